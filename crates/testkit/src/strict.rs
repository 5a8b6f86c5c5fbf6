//! Strict checks of DNS answers: every answer the testkit's client receives passes through
//! [`strict`], so every end-to-end test checks that what the appliance sent is a whole, valid
//! message, not only the fields the test looks at.
//!
//! Two independent parsers read each answer: hickory-proto, which must consume every byte and
//! read back the header's counts after a round trip, and dnspython (`dns.message.from_wire`,
//! which refuses trailing bytes), in one `python3` process per test binary that reads answers
//! in hex, one a line, and says `ok` or why not. dnspython is a test requirement: `.ci/run`
//! installs it (`python3 -m pip install dnspython`).

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Mutex, OnceLock};

use hickory_proto::op::{Header, Message, MessageType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};

/// The dnspython side: reads hex lines, answers one line each.
const CHECKER: &str = r#"
import sys
try:
    import dns.message
except ImportError:
    print("dnspython is not installed: python3 -m pip install dnspython", flush=True)
    sys.exit(0)
print("ready", flush=True)
for line in sys.stdin:
    try:
        m = dns.message.from_wire(bytes.fromhex(line.strip()))
        # Written again and read again, it must still read.
        dns.message.from_wire(m.to_wire())
        print("ok", flush=True)
    except Exception as e:
        print(f"{type(e).__name__}: {e}".replace("\n", " "), flush=True)
"#;

struct Python {
    _child: Child,
    input: ChildStdin,
    output: BufReader<ChildStdout>,
}

fn python() -> &'static Mutex<Python> {
    static PYTHON: OnceLock<Mutex<Python>> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let mut child = Command::new("python3")
            .args(["-u", "-c", CHECKER])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 must be installed to check DNS answers with dnspython");
        let input = child.stdin.take().unwrap();
        let mut output = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        output.read_line(&mut first).unwrap();
        assert_eq!(first.trim(), "ready", "{}", first.trim());
        Mutex::new(Python {
            _child: child,
            input,
            output,
        })
    })
}

/// What dnspython says of `bytes`: `Ok` or its complaint.
fn dnspython(bytes: &[u8]) -> Result<(), String> {
    let mut p = python().lock().unwrap_or_else(|e| e.into_inner());
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    writeln!(p.input, "{hex}").unwrap();
    p.input.flush().unwrap();
    let mut line = String::new();
    p.output.read_line(&mut line).unwrap();
    match line.trim() {
        "ok" => Ok(()),
        why => Err(why.to_owned()),
    }
}

/// What hickory-proto says of `bytes`: the message, or why it is not a whole, valid answer.
fn hickory(bytes: &[u8]) -> Result<Message, String> {
    let header = Header::read(&mut BinDecoder::new(bytes)).map_err(|e| e.to_string())?;
    let mut d = BinDecoder::new(bytes);
    let m = Message::read(&mut d).map_err(|e| e.to_string())?;
    if !d.is_empty() {
        return Err(format!("{} bytes after the last record", d.len()));
    }
    if m.metadata.message_type != MessageType::Response {
        return Err("the QR bit is not set".into());
    }
    // Written again and read again: the same sections, as many as the header counted.
    let again = Message::from_vec(&m.to_vec().map_err(|e| e.to_string())?)
        .map_err(|e| format!("does not read after a round trip: {e}"))?;
    let counts = |m: &Message| {
        (
            m.queries.len(),
            m.answers.len(),
            m.authorities.len(),
            m.additionals.len()
                + usize::from(m.edns.is_some())
                + usize::from(m.signature.is_some()),
        )
    };
    let c = header.counts;
    let promised = (
        usize::from(c.queries),
        usize::from(c.answers),
        usize::from(c.authorities),
        usize::from(c.additionals),
    );
    if counts(&m) != promised || counts(&again) != promised {
        return Err(format!(
            "the header counts {promised:?} records, {:?} read ({:?} after a round trip)",
            counts(&m),
            counts(&again)
        ));
    }
    Ok(m)
}

/// Reads an answer strictly: hickory-proto and dnspython must both accept the whole of it.
/// Panics, with both parsers' verdicts and the bytes in hex, when either does not: the test
/// that received it fails there.
pub fn strict(bytes: &[u8]) -> Message {
    let h = hickory(bytes);
    let p = dnspython(bytes);
    match (h, p) {
        (Ok(m), Ok(())) => m,
        (h, p) => {
            let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            panic!(
                "a DNS answer that a strict parser refuses:\n  hickory-proto: {}\n  dnspython: {}\n  bytes: {hex}",
                h.map_or_else(|e| e, |_| "ok".into()),
                p.map_or_else(|e| e, |()| "ok".into()),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer() -> Vec<u8> {
        use hickory_proto::op::{OpCode, Query};
        use hickory_proto::rr::rdata::A;
        use hickory_proto::rr::{Name, RData, Record, RecordType};
        let name = Name::from_ascii("example.com.").unwrap();
        let mut m = Message::new(1, MessageType::Response, OpCode::Query);
        m.add_query(Query::query(name.clone(), RecordType::A));
        m.add_answer(Record::from_rdata(name, 60, RData::A(A::new(192, 0, 2, 1))));
        m.to_vec().unwrap()
    }

    #[test]
    fn a_whole_answer_passes_and_trailing_or_missing_bytes_do_not() {
        let good = answer();
        assert_eq!(strict(&good).answers.len(), 1);
        let mut trailing = good.clone();
        trailing.extend_from_slice(&[0xc0, 0x0c, 0, 1]);
        assert!(hickory(&trailing).is_err());
        assert!(dnspython(&trailing).is_err());
        let short = &good[..good.len() - 1];
        assert!(hickory(short).is_err());
        assert!(dnspython(short).is_err());
        let mut query = good.clone();
        query[2] &= 0x7f;
        assert!(hickory(&query).is_err());
        assert!(std::panic::catch_unwind(|| strict(&trailing)).is_err());
    }
}
