//! `gregor groups`: list, describe, reset offsets of and delete consumer groups (like
//! kafka-consumer-groups.sh).
//!
//! Members come from ListGroups/DescribeGroups (`fetch_group_list`); committed offsets are read and
//! written by a consumer that carries the group's id but never joins it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::{ArgGroup, Args as ClapArgs};
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use super::consume::{topic_partitions, unreachable_error, Quiet};
use super::ClientArgs;

#[derive(ClapArgs, Debug)]
#[command(
    group(ArgGroup::new("action").required(true).args(["list", "describe", "reset_offsets", "delete", "delete_offsets"])),
    group(ArgGroup::new("spec").args(["to_earliest", "to_latest", "to_current", "to_datetime", "by_duration", "to_offset", "shift_by", "from_file"])),
    after_help = "Examples:
  gregor groups --list
  gregor groups --list --state
  gregor groups --describe --group billing
  gregor groups --describe --group billing --members
  gregor groups --reset-offsets --group billing --topic events --to-earliest --dry-run
  gregor groups --reset-offsets --group billing --topic events:0,1 --shift-by -10 --execute
  gregor groups --reset-offsets --group billing --all-topics --to-datetime 2026-11-22T00:00:00.000 --execute
  gregor groups --reset-offsets --group billing --topic orders --by-duration PT30M --execute
  gregor groups --reset-offsets --group billing --topic orders --to-earliest --export > plan.csv
  gregor groups --reset-offsets --group billing --from-file plan.csv --execute
  gregor groups --delete-offsets --group billing --topic events
  gregor groups --delete --group billing

--to-datetime takes YYYY-MM-DDTHH:mm:SS[.sss] in UTC, optionally ending in Z or +hh:mm/-hh:mm.
Offsets can only be reset while the group has no active members.")]
pub struct Args {
    #[command(flatten)]
    pub client: ClientArgs,
    /// List the consumer groups (with --state: and their states).
    #[arg(long)]
    pub list: bool,
    /// Describe groups: state, members and, per partition, committed offset, log end and lag.
    #[arg(long)]
    pub describe: bool,
    /// Reset the committed offsets of a group (needs --topic or --all-topics and one of the --to-*
    /// / --shift-by options).
    #[arg(long)]
    pub reset_offsets: bool,
    /// Delete groups (only groups without active members).
    #[arg(long)]
    pub delete: bool,
    /// Delete the committed offsets of a group for --topic.
    #[arg(long)]
    pub delete_offsets: bool,
    /// The group; repeatable.
    #[arg(long)]
    pub group: Vec<String>,
    /// Every group (for --describe, --reset-offsets, --delete).
    #[arg(long, conflicts_with = "group")]
    pub all_groups: bool,
    /// A topic, optionally with partitions: TOPIC or TOPIC:0,1,2; repeatable.
    #[arg(long)]
    pub topic: Vec<String>,
    /// Every topic the group has committed offsets for (--reset-offsets).
    #[arg(long, conflicts_with = "topic")]
    pub all_topics: bool,
    /// Reset to the log start offset.
    #[arg(long)]
    pub to_earliest: bool,
    /// Reset to the log end offset.
    #[arg(long)]
    pub to_latest: bool,
    /// Reset to the currently committed offset.
    #[arg(long)]
    pub to_current: bool,
    /// Reset to the first offset with a timestamp at or after this time.
    #[arg(long, value_name = "YYYY-MM-DDTHH:mm:SS.sss")]
    pub to_datetime: Option<String>,
    /// Reset to the first offset with a timestamp at or after now minus this ISO-8601 duration,
    /// e.g. PT30M, P1DT2H (Kafka's --by-duration).
    #[arg(long, value_name = "PnDTnHnMnS")]
    pub by_duration: Option<String>,
    /// Reset to this offset (clamped to the log's range).
    #[arg(long, value_name = "N")]
    pub to_offset: Option<i64>,
    /// Move the committed offset by N (may be negative; clamped to the log's range).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub shift_by: Option<i64>,
    /// Reset to the offsets in a CSV file of `TOPIC,PARTITION,OFFSET` lines (as --export writes).
    #[arg(long, value_name = "FILE")]
    pub from_file: Option<std::path::PathBuf>,
    /// Print the plan as CSV (`TOPIC,PARTITION,OFFSET`; with several groups
    /// `GROUP,TOPIC,PARTITION,OFFSET`) instead of a table, for --from-file later.
    #[arg(long)]
    pub export: bool,
    /// Show the new offsets without committing them (the default).
    #[arg(long, conflicts_with = "execute")]
    pub dry_run: bool,
    /// Commit the new offsets.
    #[arg(long)]
    pub execute: bool,
    /// --describe: only the members.
    #[arg(long)]
    pub members: bool,
    /// --describe: only the state; --list: show each group's state.
    #[arg(long)]
    pub state: bool,
    /// --describe: only the offsets.
    #[arg(long)]
    pub offsets: bool,
}

/// Prints rows under headers, columns aligned.
fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    print!("{}", super::common::table(headers, rows));
}

struct Member {
    id: String,
    client_id: String,
    host: String,
    assignment: Vec<(String, i32)>,
}

struct GroupDesc {
    state: String,
    protocol_type: String,
    protocol: String,
    members: Vec<Member>,
}

/// Decodes a consumer-protocol assignment: version i16, [topic string, [partition i32]], user data.
fn decode_assignment(b: &[u8]) -> Vec<(String, i32)> {
    fn take<'a>(b: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        if b.len() < n {
            return None;
        }
        let (a, rest) = b.split_at(n);
        *b = rest;
        Some(a)
    }
    fn decode(mut b: &[u8]) -> Option<Vec<(String, i32)>> {
        let b = &mut b;
        let _version = i16::from_be_bytes(take(b, 2)?.try_into().ok()?);
        let topics = i32::from_be_bytes(take(b, 4)?.try_into().ok()?);
        let mut out = vec![];
        for _ in 0..topics.max(0) {
            let len = i16::from_be_bytes(take(b, 2)?.try_into().ok()?);
            let topic = String::from_utf8_lossy(take(b, len.max(0) as usize)?).into_owned();
            let n = i32::from_be_bytes(take(b, 4)?.try_into().ok()?);
            for _ in 0..n.max(0) {
                let p = i32::from_be_bytes(take(b, 4)?.try_into().ok()?);
                out.push((topic.clone(), p));
            }
        }
        Some(out)
    }
    decode(b).unwrap_or_default()
}

struct Ctx {
    client: ClientArgs,
    timeout: Duration,
}

impl Ctx {
    /// A consumer carrying `group`'s id; it never subscribes, so it never joins the group.
    fn consumer(&self, group: &str) -> anyhow::Result<BaseConsumer<Quiet>> {
        let mut config = self.client.client_config()?;
        config
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false");
        config
            .create_with_context(Quiet)
            .context("cannot create a client")
    }

    fn describe_group(&self, c: &BaseConsumer<Quiet>, group: &str) -> anyhow::Result<GroupDesc> {
        let list = c
            .fetch_group_list(Some(group), self.timeout)
            .map_err(|e| unreachable_error(e, self.timeout))?;
        let Some(g) = list.groups().iter().find(|g| g.name() == group) else {
            bail!("consumer group {group} does not exist");
        };
        Ok(GroupDesc {
            state: g.state().to_string(),
            protocol_type: g.protocol_type().to_string(),
            protocol: g.protocol().to_string(),
            members: g
                .members()
                .iter()
                .map(|m| Member {
                    id: m.id().to_string(),
                    client_id: m.client_id().to_string(),
                    host: m.client_host().to_string(),
                    assignment: m.assignment().map(decode_assignment).unwrap_or_default(),
                })
                .collect(),
        })
    }

    /// Every (topic, partition) of the given topics (all non-internal topics when `None`).
    fn partitions(
        &self,
        c: &BaseConsumer<Quiet>,
        topics: Option<&[String]>,
    ) -> anyhow::Result<Vec<(String, i32)>> {
        let mut out = vec![];
        match topics {
            Some(topics) => {
                for spec in topics {
                    let (topic, wanted) = parse_topic_spec(spec)?;
                    let all = topic_partitions(c.client(), &topic, self.timeout)?;
                    match wanted {
                        None => out.extend(all.into_iter().map(|p| (topic.clone(), p))),
                        Some(ps) => {
                            for p in ps {
                                if !all.contains(&p) {
                                    bail!("topic {topic} has no partition {p}");
                                }
                                out.push((topic.clone(), p));
                            }
                        }
                    }
                }
            }
            None => {
                let md = c
                    .fetch_metadata(None, self.timeout)
                    .map_err(|e| unreachable_error(e, self.timeout))?;
                for t in md.topics() {
                    if t.name().starts_with("__") || t.error().is_some() {
                        continue;
                    }
                    out.extend(
                        t.partitions()
                            .iter()
                            .map(|p| (t.name().to_string(), p.id())),
                    );
                }
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// The group's committed offsets among `parts`.
    fn committed(
        &self,
        c: &BaseConsumer<Quiet>,
        parts: &[(String, i32)],
    ) -> anyhow::Result<BTreeMap<(String, i32), i64>> {
        let mut tpl = TopicPartitionList::new();
        for (t, p) in parts {
            tpl.add_partition(t, *p);
        }
        if tpl.count() == 0 {
            return Ok(BTreeMap::new());
        }
        let got = c
            .committed_offsets(tpl, self.timeout)
            .map_err(|e| unreachable_error(e, self.timeout))
            .context("cannot read committed offsets")?;
        let mut out = BTreeMap::new();
        for e in got.elements() {
            if let Offset::Offset(o) = e.offset() {
                out.insert((e.topic().to_string(), e.partition()), o);
            }
        }
        Ok(out)
    }

    fn watermarks(
        &self,
        c: &BaseConsumer<Quiet>,
        topic: &str,
        p: i32,
    ) -> anyhow::Result<(i64, i64)> {
        c.fetch_watermarks(topic, p, self.timeout)
            .map_err(|e| unreachable_error(e, self.timeout))
            .with_context(|| format!("cannot read the offsets of {topic}-{p}"))
    }
}

fn parse_topic_spec(spec: &str) -> anyhow::Result<(String, Option<Vec<i32>>)> {
    match spec.split_once(':') {
        None => Ok((spec.to_string(), None)),
        Some((t, ps)) => {
            let ps = ps
                .split(',')
                .map(|p| p.trim().parse::<i32>())
                .collect::<Result<Vec<_>, _>>()
                .with_context(|| format!("--topic {spec}: expected TOPIC or TOPIC:0,1,2"))?;
            Ok((t.to_string(), Some(ps)))
        }
    }
}

/// Milliseconds in an ISO-8601 duration `PnDTnHnMnS` (seconds may have a fraction), as
/// Kafka's `--by-duration` takes it.
fn parse_duration_ms(s: &str) -> anyhow::Result<i64> {
    let err =
        || anyhow::anyhow!("--by-duration {s}: expected an ISO-8601 duration like PT30M or P1DT2H");
    let rest = s.strip_prefix('P').ok_or_else(err)?;
    let (days, time) = rest.split_once('T').unwrap_or((rest, ""));
    let mut total = 0f64;
    let mut any = false;
    for (part, units) in [
        (days, &[('D', 86_400_000f64)][..]),
        (
            time,
            &[('H', 3_600_000f64), ('M', 60_000f64), ('S', 1000f64)][..],
        ),
    ] {
        let mut number = String::new();
        let mut allowed = units.iter();
        for c in part.chars() {
            if c.is_ascii_digit() || c == '.' {
                number.push(c);
                continue;
            }
            // Units must come in order, each at most once.
            let (_, scale) = allowed.find(|(u, _)| *u == c).ok_or_else(err)?;
            total += number.parse::<f64>().map_err(|_| err())? * scale;
            number.clear();
            any = true;
        }
        if !number.is_empty() {
            return Err(err());
        }
    }
    if !any || (s.contains('T') && time.is_empty()) {
        return Err(err());
    }
    Ok(total as i64)
}

/// Milliseconds since the epoch of `YYYY-MM-DDTHH:mm:SS[.sss][Z|±hh:mm]` (UTC unless an offset is
/// given).
fn parse_datetime(s: &str) -> anyhow::Result<i64> {
    let err = || anyhow::anyhow!("--to-datetime {s}: expected YYYY-MM-DDTHH:mm:SS.sss");
    let (body, offset_min) = if let Some(b) = s.strip_suffix('Z') {
        (b, 0i64)
    } else if s.len() > 6
        && matches!(&s[s.len() - 6..s.len() - 5], "+" | "-")
        && s.as_bytes()[s.len() - 3] == b':'
    {
        let sign = if &s[s.len() - 6..s.len() - 5] == "-" {
            -1
        } else {
            1
        };
        let h: i64 = s[s.len() - 5..s.len() - 3].parse().map_err(|_| err())?;
        let m: i64 = s[s.len() - 2..].parse().map_err(|_| err())?;
        (&s[..s.len() - 6], sign * (h * 60 + m))
    } else {
        (s, 0)
    };
    let (date, time) = body.split_once('T').ok_or_else(err)?;
    let d: Vec<&str> = date.split('-').collect();
    let (time, millis) = match time.split_once('.') {
        Some((t, ms)) => {
            let ms = format!("{ms:0<3}");
            (t, ms[..3].parse::<i64>().map_err(|_| err())?)
        }
        None => (time, 0),
    };
    let t: Vec<&str> = time.split(':').collect();
    if d.len() != 3 || t.len() != 3 {
        return Err(err());
    }
    let num = |x: &str| x.parse::<i64>().map_err(|_| err());
    let (y, mo, day) = (num(d[0])?, num(d[1])?, num(d[2])?);
    let (h, mi, sec) = (num(t[0])?, num(t[1])?, num(t[2])?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&day) || h > 23 || mi > 59 || sec > 60 {
        return Err(err());
    }
    // Days from civil (Howard Hinnant's algorithm).
    let yy = if mo <= 2 { y - 1 } else { y };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Ok(((days * 86_400 + h * 3600 + mi * 60 + sec) - offset_min * 60) * 1000 + millis)
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let ctx = Ctx {
        timeout: args.client.timeout(),
        client: args.client.clone(),
    };
    if args.list {
        return list(&ctx, args.state);
    }
    let groups = if args.all_groups {
        all_groups(&ctx)?.into_iter().map(|(g, _)| g).collect()
    } else if args.group.is_empty() {
        bail!("--group is required (or --all-groups)");
    } else {
        args.group.clone()
    };
    if args.describe {
        let (m, s, o) = match (args.members, args.state, args.offsets) {
            (false, false, false) => (true, true, true),
            sel => sel,
        };
        for (i, g) in groups.iter().enumerate() {
            if i > 0 {
                println!();
            }
            describe(&ctx, g, m, s, o)?;
        }
        Ok(())
    } else if args.reset_offsets {
        let mut rows = vec![];
        for g in &groups {
            rows.extend(reset(&ctx, &args, g)?);
        }
        if args.export {
            for row in &rows {
                let fields = if groups.len() > 1 {
                    &row[..]
                } else {
                    &row[1..]
                };
                println!("{}", fields.join(","));
            }
        } else {
            print_table(&["GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"], &rows);
        }
        Ok(())
    } else if args.delete {
        delete(&ctx, &groups)
    } else {
        if args.topic.is_empty() {
            bail!("--delete-offsets needs --topic");
        }
        for g in &groups {
            delete_offsets(&ctx, g, &args.topic)?;
        }
        Ok(())
    }
}

fn all_groups(ctx: &Ctx) -> anyhow::Result<Vec<(String, String)>> {
    let c = ctx.consumer("gregor-groups-tool")?;
    let list = c
        .fetch_group_list(None, ctx.timeout)
        .map_err(|e| unreachable_error(e, ctx.timeout))?;
    let mut out: Vec<(String, String)> = list
        .groups()
        .iter()
        .map(|g| (g.name().to_string(), g.state().to_string()))
        .collect();
    out.sort();
    out.dedup();
    Ok(out)
}

fn list(ctx: &Ctx, with_state: bool) -> anyhow::Result<()> {
    let groups = all_groups(ctx)?;
    if with_state {
        let rows: Vec<Vec<String>> = groups.into_iter().map(|(g, s)| vec![g, s]).collect();
        print_table(&["GROUP", "STATE"], &rows);
    } else {
        for (g, _) in groups {
            println!("{g}");
        }
    }
    Ok(())
}

fn describe(
    ctx: &Ctx,
    group: &str,
    members: bool,
    state: bool,
    offsets: bool,
) -> anyhow::Result<()> {
    let c = ctx.consumer(group)?;
    let d = ctx.describe_group(&c, group)?;
    if d.state == "Dead" {
        bail!("consumer group {group} does not exist");
    }
    let mut sections = 0;
    let mut section = || {
        if sections > 0 {
            println!();
        }
        sections += 1;
    };
    if state {
        section();
        let protocol = if d.protocol_type.is_empty() {
            d.protocol.clone()
        } else {
            format!("{}/{}", d.protocol_type, d.protocol)
        };
        print_table(
            &["GROUP", "ASSIGNMENT-STRATEGY", "STATE", "#MEMBERS"],
            &[vec![
                group.to_string(),
                if d.protocol.is_empty() {
                    "-".into()
                } else {
                    protocol
                },
                d.state.clone(),
                d.members.len().to_string(),
            ]],
        );
    }
    if members {
        section();
        if d.members.is_empty() {
            println!("Consumer group '{group}' has no active members.");
        } else {
            let rows: Vec<Vec<String>> = d
                .members
                .iter()
                .map(|m| {
                    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
                    for (t, p) in &m.assignment {
                        by_topic.entry(t).or_default().push(*p);
                    }
                    let assignment = by_topic
                        .iter()
                        .map(|(t, ps)| {
                            let ps: Vec<String> = ps.iter().map(|p| p.to_string()).collect();
                            format!("{t}({})", ps.join(","))
                        })
                        .collect::<Vec<_>>()
                        .join(" ");
                    vec![
                        group.to_string(),
                        m.id.clone(),
                        m.host.clone(),
                        m.client_id.clone(),
                        m.assignment.len().to_string(),
                        if assignment.is_empty() {
                            "-".into()
                        } else {
                            assignment
                        },
                    ]
                })
                .collect();
            print_table(
                &[
                    "GROUP",
                    "CONSUMER-ID",
                    "HOST",
                    "CLIENT-ID",
                    "#PARTITIONS",
                    "ASSIGNMENT",
                ],
                &rows,
            );
        }
    }
    if offsets {
        section();
        let all = ctx.partitions(&c, None)?;
        let committed = ctx.committed(&c, &all)?;
        let mut owner: BTreeMap<(String, i32), &Member> = BTreeMap::new();
        for m in &d.members {
            for tp in &m.assignment {
                owner.insert(tp.clone(), m);
            }
        }
        let keys: BTreeSet<(String, i32)> = committed.keys().chain(owner.keys()).cloned().collect();
        if keys.is_empty() {
            println!("Consumer group '{group}' has no committed offsets.");
            return Ok(());
        }
        let mut rows = vec![];
        for (t, p) in keys {
            let (_, end) = ctx.watermarks(&c, &t, p)?;
            let current = committed.get(&(t.clone(), p)).copied();
            let m = owner.get(&(t.clone(), p));
            let dash = || "-".to_string();
            rows.push(vec![
                group.to_string(),
                t.clone(),
                p.to_string(),
                current.map_or_else(dash, |c| c.to_string()),
                end.to_string(),
                current.map_or_else(dash, |c| (end - c).max(0).to_string()),
                m.map_or_else(dash, |m| m.id.clone()),
                m.map_or_else(dash, |m| m.host.clone()),
                m.map_or_else(dash, |m| m.client_id.clone()),
            ]);
        }
        print_table(
            &[
                "GROUP",
                "TOPIC",
                "PARTITION",
                "CURRENT-OFFSET",
                "LOG-END-OFFSET",
                "LAG",
                "CONSUMER-ID",
                "HOST",
                "CLIENT-ID",
            ],
            &rows,
        );
    }
    Ok(())
}

/// `TOPIC,PARTITION,OFFSET` lines (blank lines and `#` comments skipped).
fn read_reset_file(path: &std::path::Path) -> anyhow::Result<BTreeMap<(String, i32), i64>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut plan = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = || {
            anyhow::anyhow!(
                "{}:{}: expected TOPIC,PARTITION,OFFSET",
                path.display(),
                n + 1
            )
        };
        let mut fields = line.rsplitn(3, ',');
        let offset = fields
            .next()
            .and_then(|f| f.trim().parse::<i64>().ok())
            .ok_or_else(bad)?;
        let partition = fields
            .next()
            .and_then(|f| f.trim().parse::<i32>().ok())
            .ok_or_else(bad)?;
        let topic = fields.next().filter(|t| !t.is_empty()).ok_or_else(bad)?;
        plan.insert((topic.trim().to_string(), partition), offset);
    }
    Ok(plan)
}

fn reset(ctx: &Ctx, args: &Args, group: &str) -> anyhow::Result<Vec<Vec<String>>> {
    let from_file = args.from_file.as_deref().map(read_reset_file).transpose()?;
    if from_file.is_none() && args.topic.is_empty() && !args.all_topics {
        bail!("--reset-offsets needs --topic, --all-topics or --from-file");
    }
    let chosen = [
        args.to_earliest,
        args.to_latest,
        args.to_current,
        args.to_datetime.is_some(),
        args.by_duration.is_some(),
        args.to_offset.is_some(),
        args.shift_by.is_some(),
        from_file.is_some(),
    ];
    if !chosen.contains(&true) {
        bail!("--reset-offsets needs one of --to-earliest, --to-latest, --to-current, --to-datetime, --by-duration, --to-offset, --shift-by, --from-file");
    }
    let c = ctx.consumer(group)?;
    // A group that does not exist yet has nothing to refuse over.
    if let Ok(d) = ctx.describe_group(&c, group) {
        if !d.members.is_empty() || !matches!(d.state.as_str(), "Empty" | "Dead" | "") {
            bail!(
                "assignments can only be reset if the group '{group}' is inactive, but the current state is {} ({} members)",
                d.state,
                d.members.len()
            );
        }
    }
    let parts = if let Some(plan) = &from_file {
        plan.keys().cloned().collect()
    } else if args.all_topics {
        let all = ctx.partitions(&c, None)?;
        ctx.committed(&c, &all)?.into_keys().collect()
    } else {
        ctx.partitions(&c, Some(&args.topic))?
    };
    let committed = ctx.committed(&c, &parts)?;
    let target_time = match (&args.to_datetime, &args.by_duration) {
        (Some(s), _) => Some(parse_datetime(s)?),
        (None, Some(d)) => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64);
            Some(now - parse_duration_ms(d)?)
        }
        (None, None) => None,
    };
    let by_time = match target_time {
        None => BTreeMap::new(),
        Some(ts) => {
            let mut tpl = TopicPartitionList::new();
            for (t, p) in &parts {
                tpl.add_partition_offset(t, *p, Offset::Offset(ts))?;
            }
            let got = c
                .offsets_for_times(tpl, ctx.timeout)
                .map_err(|e| unreachable_error(e, ctx.timeout))?;
            got.elements()
                .iter()
                .map(|e| ((e.topic().to_string(), e.partition()), e.offset()))
                .collect()
        }
    };
    let mut new = TopicPartitionList::new();
    let mut rows = vec![];
    for (t, p) in &parts {
        let (low, high) = ctx.watermarks(&c, t, *p)?;
        let current = committed.get(&(t.clone(), *p)).copied();
        let target = if let Some(plan) = &from_file {
            plan[&(t.clone(), *p)]
        } else if args.to_earliest {
            low
        } else if args.to_latest {
            high
        } else if args.to_current {
            current.unwrap_or(high)
        } else if let Some(o) = args.to_offset {
            o
        } else if let Some(n) = args.shift_by {
            let Some(cur) = current else {
                bail!("cannot shift the offset of {t}-{p} for group {group}: it has no committed offset");
            };
            cur.saturating_add(n)
        } else {
            match by_time.get(&(t.clone(), *p)) {
                Some(Offset::Offset(o)) if *o >= 0 => *o,
                _ => high,
            }
        };
        let target = target.clamp(low, high);
        new.add_partition_offset(t, *p, Offset::Offset(target))?;
        rows.push(vec![
            group.to_string(),
            t.clone(),
            p.to_string(),
            target.to_string(),
        ]);
    }
    if args.execute {
        if new.count() > 0 {
            c.commit(&new, CommitMode::Sync)
                .map_err(|e| unreachable_error(e, ctx.timeout))
                .with_context(|| format!("cannot commit the new offsets of group {group}"))?;
        }
    } else if !args.dry_run {
        eprintln!("WARN: No action will be performed as the --execute option is missing. Add --execute to reset the offsets, or --dry-run to silence this warning.");
    }
    Ok(rows)
}

fn delete(ctx: &Ctx, groups: &[String]) -> anyhow::Result<()> {
    let config = ctx.client.client_config()?;
    let admin: AdminClient<Quiet> = config
        .create_with_context(Quiet)
        .context("cannot create an admin client")?;
    let names: Vec<&str> = groups.iter().map(String::as_str).collect();
    let opts = AdminOptions::new().request_timeout(Some(ctx.timeout));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let results = runtime
        .block_on(async {
            tokio::time::timeout(
                ctx.timeout + Duration::from_secs(2),
                admin.delete_groups(&names, &opts),
            )
            .await
        })
        .map_err(|_| anyhow::anyhow!("cannot reach the cluster within {}s", ctx.timeout.as_secs()))?
        .map_err(|e| unreachable_error(e, ctx.timeout))?;
    let mut failed = vec![];
    let mut ok = vec![];
    for r in results {
        match r {
            Ok(g) => ok.push(format!("'{g}'")),
            Err((g, e)) => failed.push(format!("{g}: {e}")),
        }
    }
    if !ok.is_empty() {
        println!(
            "Deletion of requested consumer groups ({}) was successful.",
            ok.join(", ")
        );
    }
    if !failed.is_empty() {
        bail!("could not delete {}", failed.join("; "));
    }
    Ok(())
}

fn delete_offsets(ctx: &Ctx, group: &str, topics: &[String]) -> anyhow::Result<()> {
    use rdkafka::bindings as rd;
    use std::ffi::{CStr, CString};

    use super::librdkafka;

    let c = ctx.consumer(group)?;
    let parts = ctx.partitions(&c, Some(topics))?;
    let mut tpl = TopicPartitionList::new();
    for (t, p) in &parts {
        tpl.add_partition(t, *p);
    }
    let group_c = CString::new(group)?;
    // SAFETY: `del` is created here, used by the one request and destroyed once below; `tpl`
    // outlives the request (librdkafka copies it anyway).
    let mut del =
        unsafe { rd::rd_kafka_DeleteConsumerGroupOffsets_new(group_c.as_ptr(), tpl.ptr()) };
    let event = librdkafka::call_on(
        c.client().native_ptr(),
        rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_DELETECONSUMERGROUPOFFSETS,
        ctx.timeout,
        |rk, opts, queue| unsafe {
            rd::rd_kafka_DeleteConsumerGroupOffsets(rk, &mut del, 1, opts, queue)
        },
    );
    unsafe { rd::rd_kafka_DeleteConsumerGroupOffsets_destroy(del) };
    // SAFETY: the event is a DeleteConsumerGroupOffsets result owned by `event`; every pointer read
    // from it is checked for null where librdkafka allows null.
    let outcome = event.map_err(|e| e.to_string()).and_then(|event| unsafe {
        let res = rd::rd_kafka_event_DeleteConsumerGroupOffsets_result(event.0);
        let mut n = 0usize;
        let groups = rd::rd_kafka_DeleteConsumerGroupOffsets_result_groups(res, &mut n);
        let mut rows = vec![];
        for i in 0..n {
            let g = *groups.add(i);
            let e = rd::rd_kafka_group_result_error(g);
            if !e.is_null() {
                return Err(CStr::from_ptr(rd::rd_kafka_error_string(e))
                    .to_string_lossy()
                    .into_owned());
            }
            let list = rd::rd_kafka_group_result_partitions(g);
            if list.is_null() {
                continue;
            }
            for j in 0..(*list).cnt as usize {
                let el = &*(*list).elems.add(j);
                let status = if el.err == rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
                    "Successful".to_string()
                } else {
                    format!("Error: {}", rdkafka::error::RDKafkaErrorCode::from(el.err))
                };
                rows.push((
                    CStr::from_ptr(el.topic).to_string_lossy().into_owned(),
                    el.partition,
                    status,
                ));
            }
        }
        Ok(rows)
    });
    let rows =
        outcome.map_err(|e| anyhow::anyhow!("cannot delete offsets of group {group}: {e}"))?;
    let failed = rows.iter().filter(|r| r.2 != "Successful").count();
    let table: Vec<Vec<String>> = rows
        .into_iter()
        .map(|(t, p, s)| vec![t, p.to_string(), s])
        .collect();
    print_table(&["TOPIC", "PARTITION", "STATUS"], &table);
    if failed > 0 {
        bail!("{failed} partitions could not be deleted");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_duration_ms;

    #[test]
    fn iso_durations() {
        assert_eq!(parse_duration_ms("PT30M").unwrap(), 30 * 60_000);
        assert_eq!(
            parse_duration_ms("P1DT2H").unwrap(),
            86_400_000 + 2 * 3_600_000
        );
        assert_eq!(parse_duration_ms("PT1.5S").unwrap(), 1500);
        assert_eq!(parse_duration_ms("P2D").unwrap(), 2 * 86_400_000);
        for bad in ["", "P", "PT", "30M", "PT30", "PTM", "P1H", "PT1M2H"] {
            assert!(parse_duration_ms(bad).is_err(), "{bad}");
        }
    }
}
