//! `tandemctl monitor`: the datapath's drops and new-flow verdicts, live, one line each, until
//! Ctrl-C; the lost-event count at start and end.

use tandem_common::api::{
    DatapathStats, MonitorEvent, MonitorLine, PATH_DATAPATH_STATS, PATH_MONITOR,
};

use super::conntrack::encode;
use super::{emit, Ctl, CtlError, Format};

pub struct MonitorOptions<'a> {
    pub pod: Option<&'a str>,
    pub drops_only: bool,
    /// Stop after this many events (scripts, tests).
    pub count: Option<u64>,
}

pub async fn run(ctl: &Ctl, o: &MonitorOptions<'_>) -> Result<(), CtlError> {
    let mut query = Vec::new();
    if let Some(p) = o.pod {
        query.push(format!("pod={}", encode(p)));
    }
    if o.drops_only {
        query.push("dropsOnly=true".into());
    }
    let path = if query.is_empty() {
        PATH_MONITOR.to_string()
    } else {
        format!("{PATH_MONITOR}?{}", query.join("&"))
    };
    let mut stream = ctl.client.get_stream(&path).await?;
    let mut pending: Vec<u8> = Vec::new();
    let mut seen = 0u64;
    let interrupted = async {
        loop {
            let chunk = tokio::select! {
                c = stream.chunk() => c?,
                _ = tokio::signal::ctrl_c() => return Ok::<_, CtlError>(()),
            };
            let Some(chunk) = chunk else {
                return Ok(());
            };
            pending.extend_from_slice(&chunk);
            while let Some(nl) = pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = pending.drain(..=nl).collect();
                let Ok(l) = serde_json::from_slice::<MonitorLine>(&line) else {
                    continue;
                };
                if matches!(l, MonitorLine::Event(_)) {
                    seen += 1;
                }
                show(ctl.format, &l, &line);
                if o.count.is_some_and(|c| seen >= c) {
                    return Ok(());
                }
            }
        }
    };
    let res = interrupted.await;
    if ctl.format == Format::Table {
        if let Ok(s) = ctl.get::<DatapathStats>(PATH_DATAPATH_STATS).await {
            emit(&format!(
                "-- {seen} events shown; datapath events lost so far: {}",
                s.events_lost
            ));
        }
    }
    res
}

fn show(format: Format, l: &MonitorLine, raw: &[u8]) {
    match format {
        Format::Json => emit(String::from_utf8_lossy(raw).trim_end()),
        Format::Table => emit(&match l {
            MonitorLine::Start { events_lost } => format!(
                "-- monitoring (Ctrl-C to stop); datapath events lost so far: {events_lost}"
            ),
            MonitorLine::Lagged { missed } => {
                format!("-- this monitor fell behind: {missed} events missed")
            }
            MonitorLine::Event(e) => event_line(e),
        }),
    }
}

/// `12:00:01.123 acme/p1 egress tcp 10.1.0.5:40000 -> 10.1.0.6:80 DROP policy  sg-x ...`.
pub fn event_line(e: &MonitorEvent) -> String {
    let ms = e.time_ms % 86_400_000;
    let time = format!(
        "{:02}:{:02}:{:02}.{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    );
    let flow = if e.proto == "icmp" {
        format!(
            "{} -> {} type {} code {}",
            e.src,
            e.dst,
            e.dport >> 8,
            e.dport & 0xff
        )
    } else {
        format!("{}:{} -> {}:{}", e.src, e.sport, e.dst, e.dport)
    };
    let pod = if e.pod.is_empty() { "?" } else { &e.pod };
    let rule = if e.rule.is_empty() {
        String::new()
    } else {
        format!("  [{}]", e.rule)
    };
    format!(
        "{time} {pod} {} {} {flow} {} {}{rule}",
        e.direction,
        e.proto,
        e.verdict.to_uppercase(),
        e.reason
    )
}
