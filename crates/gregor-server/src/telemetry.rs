//! Client telemetry (KIP-714): clients ask which metrics to push (GetTelemetrySubscriptions) and
//! push them (PushTelemetry) as OTLP protobuf. Subscriptions are `CLIENT_METRICS` configs in the
//! metadata image (`gregor_metadata::client_metrics`); this runtime keeps each client instance's
//! subscription and push times, answers with Kafka's errors and throttling, and, until gregor
//! exports metrics, logs what each client pushed (the metric names) for an operator to read.

use std::collections::HashMap;

use gregor_metadata::client_metrics::{subscription_for, ClientAttributes, Subscription};
use gregor_metadata::MetadataImage;
use gregor_protocol::kafka::messages::PushTelemetryRequest;
use gregor_protocol::kafka::ResponseError;
use parking_lot::Mutex;
use uuid::Uuid;

/// Compression types clients may push with, preferred first (as Kafka lists them).
pub const ACCEPTED_COMPRESSION: [i8; 4] = [4, 3, 1, 2];
/// Instances kept at most (Kafka's cache size), and the shortest time one is kept idle.
const MAX_INSTANCES: usize = 16_384;
const MIN_IDLE_MS: i64 = 60_000;
/// A decompressed payload may be this many times `telemetry.max.bytes`.
const MAX_EXPANSION: usize = 16;
/// Metric names a log line shows.
const NAMES_LOGGED: usize = 10;

/// One client instance, as Kafka's `ClientMetricsInstance`.
struct Instance {
    subscription: Subscription,
    subscription_id: i32,
    last_get_ms: i64,
    last_push_ms: i64,
    terminating: bool,
    last_error: i16,
    expires_ms: i64,
}

impl Instance {
    fn new(id: Uuid, subscription: Subscription, now_ms: i64) -> Instance {
        let subscription_id = subscription_id(id, &subscription);
        let mut instance = Instance {
            subscription,
            subscription_id,
            last_get_ms: 0,
            last_push_ms: 0,
            terminating: false,
            last_error: 0,
            expires_ms: 0,
        };
        instance.touch(now_ms);
        instance
    }

    fn touch(&mut self, now_ms: i64) {
        let idle = MIN_IDLE_MS.max(3 * i64::from(self.subscription.interval_ms));
        self.expires_ms = now_ms.saturating_add(idle);
    }
}

/// The subscription's identity for this client: it changes when the metrics or interval do.
fn subscription_id(id: Uuid, subscription: &Subscription) -> i32 {
    let text = format!("{:?}{}", subscription.metrics, subscription.interval_ms);
    let (hi, lo) = id.as_u64_pair();
    let h = hi ^ lo;
    (crc32c::crc32c(text.as_bytes()) as i32) ^ ((h >> 32) as i32 ^ h as i32)
}

/// What a request tells of its client.
pub struct Caller<'a> {
    pub attributes: ClientAttributes<'a>,
}

/// GetTelemetrySubscriptions' answer.
pub struct Granted {
    pub client_instance_id: Uuid,
    pub subscription_id: i32,
    pub subscription: Subscription,
}

pub struct Telemetry {
    max_bytes: usize,
    instances: Mutex<HashMap<Uuid, Instance>>,
}

impl Telemetry {
    pub fn new(max_bytes: usize) -> Telemetry {
        Telemetry {
            max_bytes,
            instances: Mutex::new(HashMap::new()),
        }
    }

    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// The instance for `id` (kept alive by this call), made anew when it is unknown or its
    /// subscription changed; expired instances go.
    fn instance<'m>(
        instances: &'m mut HashMap<Uuid, Instance>,
        image: &MetadataImage,
        id: Uuid,
        caller: &Caller,
        now_ms: i64,
    ) -> &'m mut Instance {
        let id_text = id.to_string();
        let attributes = ClientAttributes {
            client_instance_id: &id_text,
            ..caller.attributes
        };
        let subscription = subscription_for(image, &attributes);
        instances.retain(|_, i| i.expires_ms > now_ms);
        if !instances.contains_key(&id) && instances.len() >= MAX_INSTANCES {
            let oldest = instances
                .iter()
                .min_by_key(|(_, i)| i.expires_ms)
                .map(|(id, _)| *id);
            if let Some(oldest) = oldest {
                instances.remove(&oldest);
            }
        }
        let instance = instances
            .entry(id)
            .or_insert_with(|| Instance::new(id, subscription.clone(), now_ms));
        if instance.subscription != subscription {
            *instance = Instance::new(id, subscription, now_ms);
        }
        instance.touch(now_ms);
        instance
    }

    /// GetTelemetrySubscriptions: the subscription of the client (a new instance id if it has
    /// none), or THROTTLING_QUOTA_EXCEEDED when it asks again within its push interval.
    pub fn get_subscriptions(
        &self,
        image: &MetadataImage,
        requested_id: Uuid,
        caller: &Caller,
        now_ms: i64,
    ) -> Result<Granted, i16> {
        let mut instances = self.instances.lock();
        let id = if requested_id.is_nil() {
            loop {
                let id = Uuid::new_v4();
                if !instances.contains_key(&id) {
                    break id;
                }
            }
        } else {
            requested_id
        };
        let instance = Self::instance(&mut instances, image, id, caller, now_ms);
        let last = instance.last_get_ms.max(instance.last_push_ms);
        // A client told its subscription or codec was wrong may ask again at once.
        let retrying = instance.last_error == ResponseError::UnknownSubscriptionId.code()
            || instance.last_error == ResponseError::UnsupportedCompressionType.code();
        if !retrying && now_ms - last < i64::from(instance.subscription.interval_ms) {
            return Err(ResponseError::ThrottlingQuotaExceeded.code());
        }
        instance.last_get_ms = now_ms;
        instance.last_error = 0;
        Ok(Granted {
            client_instance_id: id,
            subscription_id: instance.subscription_id,
            subscription: instance.subscription.clone(),
        })
    }

    /// PushTelemetry, checked in Kafka's order; on success the metrics are read and logged.
    pub fn push(
        &self,
        image: &MetadataImage,
        caller: &Caller,
        request: &PushTelemetryRequest,
        now_ms: i64,
    ) -> Result<(), i16> {
        let id = request.client_instance_id;
        if id.is_nil() || id.as_u128() == 1 {
            return Err(ResponseError::InvalidRequest.code());
        }
        let mut instances = self.instances.lock();
        let instance = Self::instance(&mut instances, image, id, caller, now_ms);
        if instance.terminating {
            return Err(ResponseError::InvalidRequest.code());
        }
        let checked = self.check_push(instance, request, now_ms);
        instance.terminating = request.terminating;
        if let Err(code) = checked {
            instance.last_error = code;
            return Err(code);
        }
        instance.last_push_ms = now_ms;
        instance.last_error = 0;
        drop(instances);
        if request.metrics.is_empty() {
            return Ok(());
        }
        let limit = self.max_bytes.saturating_mul(MAX_EXPANSION);
        let codec = i16::from(request.compression_type);
        let payload = gregor_storage::decompress_bounded(codec, &request.metrics, limit)
            .map_err(|_| ResponseError::InvalidRecord.code())?;
        let names = metric_names(&payload).ok_or(ResponseError::InvalidRecord.code())?;
        let shown: Vec<&str> = names
            .iter()
            .take(NAMES_LOGGED)
            .map(String::as_str)
            .collect();
        tracing::info!(
            client_instance_id = %id,
            client_id = caller.attributes.client_id,
            software = caller.attributes.client_software_name.unwrap_or("-"),
            bytes = payload.len(),
            metrics = names.len(),
            names = ?shown,
            terminating = request.terminating,
            "client metrics received"
        );
        Ok(())
    }

    fn check_push(
        &self,
        instance: &Instance,
        request: &PushTelemetryRequest,
        now_ms: i64,
    ) -> Result<(), i16> {
        // A push after a fresh GetTelemetrySubscriptions is on time (clients jitter around
        // the interval); otherwise a full interval must have passed, unless it is the last.
        let on_time = instance.last_get_ms > instance.last_push_ms
            || now_ms - instance.last_push_ms >= i64::from(instance.subscription.interval_ms);
        if !on_time && !request.terminating {
            return Err(ResponseError::ThrottlingQuotaExceeded.code());
        }
        if request.subscription_id != instance.subscription_id {
            return Err(ResponseError::UnknownSubscriptionId.code());
        }
        if !(0..=4).contains(&request.compression_type) {
            return Err(ResponseError::UnsupportedCompressionType.code());
        }
        if request.metrics.len() > self.max_bytes {
            return Err(ResponseError::TelemetryTooLarge.code());
        }
        Ok(())
    }
}

/// The names of the metrics in an OTLP `MetricsData` message (resource_metrics = 1 →
/// scope_metrics = 2 → metrics = 2 → name = 1), read straight from the protobuf wire format;
/// `None` if it is not one.
fn metric_names(data: &[u8]) -> Option<Vec<String>> {
    let mut names = Vec::new();
    for resource in length_delimited(data, 1)? {
        for scope in length_delimited(resource, 2)? {
            for metric in length_delimited(scope, 2)? {
                if let Some(name) = length_delimited(metric, 1)?.first() {
                    names.push(String::from_utf8_lossy(name).into_owned());
                }
            }
        }
    }
    Some(names)
}

fn uvarint(buf: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = buf.split_first()?;
        *buf = rest;
        value |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// Every length-delimited occurrence of `field` in a protobuf message; other fields skipped.
fn length_delimited(mut buf: &[u8], field: u64) -> Option<Vec<&[u8]>> {
    let mut found = Vec::new();
    while !buf.is_empty() {
        let key = uvarint(&mut buf)?;
        let skip = match key & 7 {
            0 => {
                uvarint(&mut buf)?;
                0
            }
            1 => 8,
            2 => {
                let len = usize::try_from(uvarint(&mut buf)?).ok()?;
                if key >> 3 == field {
                    found.push(buf.get(..len)?);
                }
                len
            }
            5 => 4,
            _ => return None,
        };
        buf = buf.get(skip..)?;
    }
    Some(found)
}

#[cfg(test)]
mod tests {
    use gregor_metadata::{ConfigResource, MetadataRecord};

    use super::*;

    fn caller() -> Caller<'static> {
        Caller {
            attributes: ClientAttributes {
                client_instance_id: "",
                client_id: "app",
                client_software_name: Some("librdkafka"),
                client_software_version: Some("2.12.1"),
                client_source_address: "127.0.0.1",
                client_source_port: "40000",
            },
        }
    }

    fn subscribed(metrics: &str, interval: &str) -> MetadataImage {
        let mut image = MetadataImage::default();
        for (name, value) in [("metrics", metrics), ("interval.ms", interval)] {
            image.apply(&MetadataRecord::Config {
                resource: ConfigResource::ClientMetrics("s".into()),
                name: name.into(),
                value: Some(value.into()),
            });
        }
        image
    }

    fn request(
        id: Uuid,
        subscription_id: i32,
        terminating: bool,
        compression_type: i8,
        metrics: &[u8],
    ) -> PushTelemetryRequest {
        PushTelemetryRequest::default()
            .with_client_instance_id(id)
            .with_subscription_id(subscription_id)
            .with_terminating(terminating)
            .with_compression_type(compression_type)
            .with_metrics(bytes::Bytes::copy_from_slice(metrics))
    }

    /// A `MetricsData` with one resource, one scope and the given metric names.
    fn otlp(names: &[&str]) -> Vec<u8> {
        fn field(number: u8, payload: &[u8]) -> Vec<u8> {
            let mut out = vec![(number << 3) | 2, payload.len() as u8];
            out.extend_from_slice(payload);
            out
        }
        let metrics: Vec<u8> = names
            .iter()
            .flat_map(|n| field(2, &[field(1, n.as_bytes()), vec![0x28, 0x01]].concat()))
            .collect();
        let scope = [field(1, b""), metrics].concat();
        field(1, &field(2, &scope))
    }

    #[test]
    fn metric_names_are_read_from_otlp() {
        let data = otlp(&["org.apache.kafka.producer.record.queue.time.avg", "x.y"]);
        assert_eq!(
            metric_names(&data).unwrap(),
            ["org.apache.kafka.producer.record.queue.time.avg", "x.y"]
        );
        assert_eq!(metric_names(&[0x0a, 0x05, 0x01]), None, "truncated");
    }

    #[test]
    fn gets_and_pushes_follow_kafkas_rules() {
        let t = Telemetry::new(1000);
        let image = subscribed("org.apache.kafka.producer.", "1000");
        let granted = t
            .get_subscriptions(&image, Uuid::nil(), &caller(), 10_000)
            .unwrap();
        let id = granted.client_instance_id;
        assert!(!id.is_nil());
        assert_eq!(granted.subscription.metrics, ["org.apache.kafka.producer."]);
        assert_eq!(granted.subscription.interval_ms, 1000);
        let sub = granted.subscription_id;
        let throttled = ResponseError::ThrottlingQuotaExceeded.code();
        // Asking again within the interval is throttled.
        assert_eq!(
            t.get_subscriptions(&image, id, &caller(), 10_500).err(),
            Some(throttled)
        );
        let data = otlp(&["org.apache.kafka.producer.a"]);
        let push = |sub, terminating, codec, data: &[u8], now| {
            t.push(
                &image,
                &caller(),
                &request(id, sub, terminating, codec, data),
                now,
            )
        };
        // A push right after the Get is on time; the next one within the interval is not.
        push(sub, false, 0, &data, 10_600).unwrap();
        assert_eq!(push(sub, false, 0, &data, 11_000), Err(throttled));
        assert_eq!(
            push(sub + 1, false, 0, &data, 11_700),
            Err(ResponseError::UnknownSubscriptionId.code())
        );
        assert_eq!(
            push(sub, false, 9, &data, 11_700),
            Err(ResponseError::UnsupportedCompressionType.code())
        );
        assert_eq!(
            push(sub, false, 0, &[0u8; 1001], 11_700),
            Err(ResponseError::TelemetryTooLarge.code())
        );
        assert_eq!(
            push(sub, false, 0, b"\xff", 11_700),
            Err(ResponseError::InvalidRecord.code()),
            "not OTLP"
        );
        // The last push may come early; nothing after it is accepted.
        push(sub, true, 0, &data, 11_800).unwrap();
        assert_eq!(
            push(sub, false, 0, &data, 20_000),
            Err(ResponseError::InvalidRequest.code())
        );
        assert_eq!(
            t.push(
                &image,
                &caller(),
                &request(Uuid::nil(), sub, false, 0, &data),
                20_000
            ),
            Err(ResponseError::InvalidRequest.code())
        );
    }

    #[test]
    fn a_changed_subscription_is_handed_out_at_once() {
        let t = Telemetry::new(1000);
        let none = MetadataImage::default();
        // Times as the clock gives them: a new instance's first Get is never early.
        let now = 1_700_000_000_000;
        let first = t
            .get_subscriptions(&none, Uuid::nil(), &caller(), now)
            .unwrap();
        assert!(first.subscription.metrics.is_empty());
        assert_eq!(first.subscription.interval_ms, 300_000);
        let all = subscribed("*", "500");
        let id = first.client_instance_id;
        let changed = t.get_subscriptions(&all, id, &caller(), now + 1).unwrap();
        assert_eq!(changed.subscription.metrics, ["*"]);
        assert_ne!(changed.subscription_id, first.subscription_id);
    }
}
