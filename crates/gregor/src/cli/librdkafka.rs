//! librdkafka admin calls that rdkafka 0.39 does not wrap: DescribeTopics (topic ids),
//! IncrementalAlterConfigs and DescribeCluster; and DescribeConfigs, whose rdkafka wrapper drops
//! per-resource errors and fails on config sources it does not know (Kafka 4's GROUP_CONFIG). Each call runs on its own queue and waits for
//! the one result event.

use std::collections::BTreeMap;
use std::ffi::{CStr, CString};
use std::os::raw::c_char;
use std::ptr;
use std::time::Duration;

use anyhow::{bail, Context};
use rdkafka::admin::AdminClient;
use rdkafka::bindings as rd;
use rdkafka::client::DefaultClientContext;

/// An owned result event.
pub(crate) struct Event(pub(crate) *mut rd::rd_kafka_event_t);

/// Runs one admin operation on an admin client (see [`call_on`]).
fn call(
    admin: &AdminClient<DefaultClientContext>,
    op: rd::rd_kafka_admin_op_t,
    timeout: Duration,
    start: impl FnOnce(
        *mut rd::rd_kafka_t,
        *const rd::rd_kafka_AdminOptions_t,
        *mut rd::rd_kafka_queue_t,
    ),
) -> anyhow::Result<Event> {
    call_on(admin.inner().native_ptr(), op, timeout, start)
}

impl Drop for Event {
    fn drop(&mut self) {
        unsafe { rd::rd_kafka_event_destroy(self.0) }
    }
}

pub(crate) unsafe fn cstr(p: *const c_char) -> Option<String> {
    (!p.is_null()).then(|| CStr::from_ptr(p).to_string_lossy().into_owned())
}

/// Runs one admin operation on any client handle: `start(rk, options, queue)` issues it;
/// returns the result event.
pub(crate) fn call_on(
    rk: *mut rd::rd_kafka_t,
    op: rd::rd_kafka_admin_op_t,
    timeout: Duration,
    start: impl FnOnce(
        *mut rd::rd_kafka_t,
        *const rd::rd_kafka_AdminOptions_t,
        *mut rd::rd_kafka_queue_t,
    ),
) -> anyhow::Result<Event> {
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    unsafe {
        let queue = rd::rd_kafka_queue_new(rk);
        let opts = rd::rd_kafka_AdminOptions_new(rk, op);
        let mut errstr = [0 as c_char; 256];
        rd::rd_kafka_AdminOptions_set_request_timeout(opts, ms, errstr.as_mut_ptr(), errstr.len());
        start(rk, opts, queue);
        // librdkafka times the request out itself; the extra second is slack.
        let ev = rd::rd_kafka_queue_poll(queue, ms.saturating_add(1000));
        rd::rd_kafka_AdminOptions_destroy(opts);
        rd::rd_kafka_queue_destroy(queue);
        if ev.is_null() {
            bail!("no answer within {}s", timeout.as_secs());
        }
        let ev = Event(ev);
        if rd::rd_kafka_event_error(ev.0) != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
            let msg = cstr(rd::rd_kafka_event_error_string(ev.0)).unwrap_or_default();
            bail!("{msg}");
        }
        Ok(ev)
    }
}

/// Topic name → TopicId (base64, as Kafka's tools print it).
pub(crate) fn topic_ids(
    admin: &AdminClient<DefaultClientContext>,
    names: &[&str],
    timeout: Duration,
) -> anyhow::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    if names.is_empty() {
        return Ok(out);
    }
    let cnames: Vec<CString> = names
        .iter()
        .map(|n| CString::new(*n))
        .collect::<Result<_, _>>()?;
    let mut ptrs: Vec<*const c_char> = cnames.iter().map(|c| c.as_ptr()).collect();
    let ev = call(
        admin,
        rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_DESCRIBETOPICS,
        timeout,
        |rk, opts, q| unsafe {
            let coll = rd::rd_kafka_TopicCollection_of_topic_names(ptrs.as_mut_ptr(), ptrs.len());
            rd::rd_kafka_DescribeTopics(rk, coll, opts, q);
            rd::rd_kafka_TopicCollection_destroy(coll);
        },
    )?;
    unsafe {
        let res = rd::rd_kafka_event_DescribeTopics_result(ev.0);
        if res.is_null() {
            bail!("unexpected DescribeTopics result");
        }
        let mut n = 0;
        let topics = rd::rd_kafka_DescribeTopics_result_topics(res, &mut n);
        for i in 0..n {
            let t = *topics.add(i);
            if !rd::rd_kafka_TopicDescription_error(t).is_null() {
                continue;
            }
            let name = cstr(rd::rd_kafka_TopicDescription_name(t)).unwrap_or_default();
            let id = rd::rd_kafka_TopicDescription_topic_id(t);
            if let (false, Some(id)) = (id.is_null(), cstr(rd::rd_kafka_Uuid_base64str(id))) {
                out.insert(name, id);
            }
        }
    }
    Ok(out)
}

pub(crate) enum Op<'a> {
    Set(&'a str, &'a str),
    Delete(&'a str),
}

/// IncrementalAlterConfigs of one resource; the broker's per-resource error is returned.
pub(crate) fn incremental_alter_configs(
    admin: &AdminClient<DefaultClientContext>,
    restype: rd::rd_kafka_ResourceType_t,
    name: &str,
    ops: &[Op<'_>],
    timeout: Duration,
) -> anyhow::Result<()> {
    let cname = CString::new(name)?;
    let mut owned = Vec::new();
    for op in ops {
        match op {
            Op::Set(k, v) => owned.push((CString::new(*k)?, Some(CString::new(*v)?))),
            Op::Delete(k) => owned.push((CString::new(*k)?, None)),
        }
    }
    let mut add_error = None;
    let ev = call(
        admin,
        rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_INCREMENTALALTERCONFIGS,
        timeout,
        |rk, opts, q| unsafe {
            let mut res = rd::rd_kafka_ConfigResource_new(restype, cname.as_ptr());
            for (k, v) in &owned {
                let (op, v) = match v {
                    Some(v) => (
                        rd::rd_kafka_AlterConfigOpType_t::RD_KAFKA_ALTER_CONFIG_OP_TYPE_SET,
                        v.as_ptr(),
                    ),
                    None => (
                        rd::rd_kafka_AlterConfigOpType_t::RD_KAFKA_ALTER_CONFIG_OP_TYPE_DELETE,
                        ptr::null(),
                    ),
                };
                let err =
                    rd::rd_kafka_ConfigResource_add_incremental_config(res, k.as_ptr(), op, v);
                if !err.is_null() && add_error.is_none() {
                    add_error = cstr(rd::rd_kafka_error_string(err));
                    rd::rd_kafka_error_destroy(err);
                }
            }
            rd::rd_kafka_IncrementalAlterConfigs(rk, &mut res, 1, opts, q);
            rd::rd_kafka_ConfigResource_destroy(res);
        },
    )?;
    if let Some(e) = add_error {
        bail!("{e}");
    }
    unsafe {
        let res = rd::rd_kafka_event_IncrementalAlterConfigs_result(ev.0);
        if res.is_null() {
            bail!("unexpected IncrementalAlterConfigs result");
        }
        let mut n = 0;
        let resources = rd::rd_kafka_IncrementalAlterConfigs_result_resources(res, &mut n);
        for i in 0..n {
            resource_error(*resources.add(i))?;
        }
    }
    Ok(())
}

/// The broker's error for one resource of a config call, with its message.
unsafe fn resource_error(r: *const rd::rd_kafka_ConfigResource_t) -> anyhow::Result<()> {
    let err = rd::rd_kafka_ConfigResource_error(r);
    if err == rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
        return Ok(());
    }
    let code = rdkafka::types::RDKafkaErrorCode::from(err);
    let msg = cstr(rd::rd_kafka_ConfigResource_error_string(r))
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| code.to_string());
    bail!("{msg}")
}

/// One described config; `source` is Kafka's ConfigSource name.
pub(crate) struct ConfigEntry {
    pub name: String,
    pub value: Option<String>,
    pub source: &'static str,
    pub read_only: bool,
    pub sensitive: bool,
}

/// Kafka's names for config sources (as kafka-configs.sh prints them).
fn source_name(source: rd::rd_kafka_ConfigSource_t) -> &'static str {
    use rd::rd_kafka_ConfigSource_t as S;
    match source {
        S::RD_KAFKA_CONFIG_SOURCE_DYNAMIC_TOPIC_CONFIG => "DYNAMIC_TOPIC_CONFIG",
        S::RD_KAFKA_CONFIG_SOURCE_DYNAMIC_BROKER_CONFIG => "DYNAMIC_BROKER_CONFIG",
        S::RD_KAFKA_CONFIG_SOURCE_DYNAMIC_DEFAULT_BROKER_CONFIG => "DYNAMIC_DEFAULT_BROKER_CONFIG",
        S::RD_KAFKA_CONFIG_SOURCE_STATIC_BROKER_CONFIG => "STATIC_BROKER_CONFIG",
        S::RD_KAFKA_CONFIG_SOURCE_DEFAULT_CONFIG => "DEFAULT_CONFIG",
        S::RD_KAFKA_CONFIG_SOURCE_GROUP_CONFIG => "GROUP_CONFIG",
        _ => "UNKNOWN",
    }
}

/// DescribeConfigs of one resource; the broker's per-resource error is returned.
pub(crate) fn describe_configs(
    admin: &AdminClient<DefaultClientContext>,
    restype: rd::rd_kafka_ResourceType_t,
    name: &str,
    timeout: Duration,
) -> anyhow::Result<Vec<ConfigEntry>> {
    let cname = CString::new(name)?;
    let ev = call(
        admin,
        rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS,
        timeout,
        |rk, opts, q| unsafe {
            let mut res = rd::rd_kafka_ConfigResource_new(restype, cname.as_ptr());
            rd::rd_kafka_DescribeConfigs(rk, &mut res, 1, opts, q);
            rd::rd_kafka_ConfigResource_destroy(res);
        },
    )?;
    let mut entries = Vec::new();
    unsafe {
        let res = rd::rd_kafka_event_DescribeConfigs_result(ev.0);
        if res.is_null() {
            bail!("unexpected DescribeConfigs result");
        }
        let mut n = 0;
        let resources = rd::rd_kafka_DescribeConfigs_result_resources(res, &mut n);
        for i in 0..n {
            let r = *resources.add(i);
            resource_error(r)?;
            let mut count = 0;
            let configs = rd::rd_kafka_ConfigResource_configs(r, &mut count);
            for j in 0..count {
                let e = *configs.add(j);
                entries.push(ConfigEntry {
                    name: cstr(rd::rd_kafka_ConfigEntry_name(e)).unwrap_or_default(),
                    value: cstr(rd::rd_kafka_ConfigEntry_value(e)),
                    source: source_name(rd::rd_kafka_ConfigEntry_source(e)),
                    read_only: rd::rd_kafka_ConfigEntry_is_read_only(e) != 0,
                    sensitive: rd::rd_kafka_ConfigEntry_is_sensitive(e) != 0,
                });
            }
        }
    }
    Ok(entries)
}

pub(crate) struct Node {
    pub id: i32,
    pub host: String,
    pub port: u16,
    pub rack: Option<String>,
}

pub(crate) struct ClusterDescription {
    pub cluster_id: Option<String>,
    pub controller: Option<i32>,
    pub nodes: Vec<Node>,
}

unsafe fn node(n: *const rd::rd_kafka_Node_t) -> Node {
    Node {
        id: rd::rd_kafka_Node_id(n),
        host: cstr(rd::rd_kafka_Node_host(n)).unwrap_or_default(),
        port: rd::rd_kafka_Node_port(n),
        rack: cstr(rd::rd_kafka_Node_rack(n)),
    }
}

/// DescribeCluster: cluster id, controller and brokers with their racks.
pub(crate) fn describe_cluster(
    admin: &AdminClient<DefaultClientContext>,
    timeout: Duration,
) -> anyhow::Result<ClusterDescription> {
    let ev = call(
        admin,
        rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_DESCRIBECLUSTER,
        timeout,
        |rk, opts, q| unsafe { rd::rd_kafka_DescribeCluster(rk, opts, q) },
    )?;
    unsafe {
        let res = rd::rd_kafka_event_DescribeCluster_result(ev.0);
        if res.is_null() {
            bail!("unexpected DescribeCluster result");
        }
        let mut n = 0;
        let nodes = rd::rd_kafka_DescribeCluster_result_nodes(res, &mut n);
        let nodes = (0..n).map(|i| node(*nodes.add(i))).collect();
        let controller = rd::rd_kafka_DescribeCluster_result_controller(res);
        Ok::<_, anyhow::Error>(ClusterDescription {
            cluster_id: cstr(rd::rd_kafka_DescribeCluster_result_cluster_id(res)),
            controller: (!controller.is_null()).then(|| rd::rd_kafka_Node_id(controller)),
            nodes,
        })
    }
    .context("DescribeCluster")
}
