// Transactions with kafkajs, a client of the classic protocol (transaction version 1: it adds
// partitions itself and keeps its epoch across transactions), against gregor, whose cluster
// finalizes transaction version 2. Run by tests/python/test_transactions_kafkajs.py:
//   node transactions.js <bootstrap> <topic> <group>
// One transaction commits two records and the group's offset, one aborts, one commits a
// sentinel; then a second producer with the same transactional id fences the first in the middle
// of a transaction and commits one of its own. Prints what each step saw as one JSON line.
const { Kafka, logLevel } = require('kafkajs');

async function main() {
  const [bootstrap, topic, group] = process.argv.slice(2);
  const kafka = new Kafka({
    clientId: 'gregor-kafkajs',
    brokers: [bootstrap],
    logLevel: logLevel.NOTHING,
    retry: { retries: 8, initialRetryTime: 100 },
  });
  const transactionalId = `kafkajs-${topic}`;
  const newProducer = async () => {
    const p = kafka.producer({ transactionalId, idempotent: true, maxInFlightRequests: 1 });
    await p.connect();
    return p;
  };
  const seen = {};
  const first = await newProducer();

  let txn = await first.transaction();
  await txn.send({ topic, messages: [{ value: 'c0' }, { value: 'c1' }] });
  await txn.sendOffsets({
    consumerGroupId: group,
    topics: [{ topic, partitions: [{ partition: 0, offset: '7' }] }],
  });
  await txn.commit();

  txn = await first.transaction();
  await txn.send({ topic, messages: [{ value: 'a0' }] });
  await txn.abort();

  txn = await first.transaction();
  await txn.send({ topic, messages: [{ value: 'c2' }] });
  await txn.commit();

  // The zombie: its open transaction is aborted when the successor initialises its
  // transactional producer id (kafkajs does that at its first transaction()).
  const zombie = await first.transaction();
  await zombie.send({ topic, messages: [{ value: 'z0' }] });
  const successor = await newProducer();
  txn = await successor.transaction();
  try {
    await zombie.send({ topic, messages: [{ value: 'z1' }] });
    await zombie.commit();
    seen.zombie = 'committed';
  } catch (e) {
    seen.zombie = e.type || e.name;
  }
  await txn.send({ topic, messages: [{ value: 'c3' }] });
  await txn.commit();
  seen.done = true;

  await Promise.allSettled([first.disconnect(), successor.disconnect()]);
  console.log(JSON.stringify(seen));
}

main().catch((e) => {
  console.error(e && e.stack ? e.stack : e);
  process.exit(1);
});
