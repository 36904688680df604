//! stdout is the CNI protocol: this is the only module that writes it.

use std::io::Write;

use serde::Serialize;

/// Print one JSON document and a newline.
pub fn print_json<T: Serialize>(value: &T) {
    let body = serde_json::to_vec(value).expect("CNI documents always serialise");
    let mut out = std::io::stdout().lock();
    // Nothing useful can be done if the runtime closed our stdout.
    let _ = out.write_all(&body);
    let _ = out.write_all(b"\n");
    let _ = out.flush();
}
