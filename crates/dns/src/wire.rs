//! Just enough DNS wire format for the fast path: read a plain query (one question, optional
//! OPT), walk an answer's records to find their TTL fields, and write the few answers Hedgerow
//! makes itself. Every read is bounds-checked; anything unusual returns `None` and the query
//! takes the full hickory path instead.

use hedgerow_model::normalise_name_into;
use hickory_proto::rr::Name;

use crate::identity::Echo;

/// A plain query as it arrived.
pub(crate) struct Query<'a> {
    pub(crate) id: u16,
    /// The RD flag, echoed in the answer.
    pub(crate) rd: bool,
    /// The CD flag, echoed in the answer (RFC 4035 §3.1.6), as the full path echoes it.
    pub(crate) cd: bool,
    /// Lower-case name without the trailing dot (`""` for the root).
    pub(crate) name: String,
    pub(crate) qtype: u16,
    /// The question section as sent (name, type, class), echoed verbatim.
    pub(crate) question: &'a [u8],
    /// `Some((payload, dnssec_ok))` when the query carried EDNS.
    pub(crate) edns: Option<(u16, bool)>,
    /// The OPT record's options as sent (empty without EDNS or options), for
    /// [`crate::identity::identify`].
    pub(crate) options: &'a [u8],
    /// The client-subnet option our answer carries back, once the client is identified.
    pub(crate) echo: Option<Echo>,
}

/// A [`Query`] that owns its question, for a task that outlives the datagram buffer.
pub(crate) struct OwnedQuery {
    id: u16,
    rd: bool,
    cd: bool,
    name: String,
    qtype: u16,
    question: Vec<u8>,
    edns: Option<(u16, bool)>,
    echo: Option<Echo>,
}

impl Query<'_> {
    pub(crate) fn to_owned(&self) -> OwnedQuery {
        OwnedQuery {
            id: self.id,
            rd: self.rd,
            cd: self.cd,
            name: self.name.clone(),
            qtype: self.qtype,
            question: self.question.to_vec(),
            edns: self.edns,
            echo: self.echo,
        }
    }
}

impl OwnedQuery {
    pub(crate) fn as_query(&self) -> Query<'_> {
        Query {
            id: self.id,
            rd: self.rd,
            cd: self.cd,
            name: self.name.clone(),
            qtype: self.qtype,
            question: &self.question,
            edns: self.edns,
            options: &[],
            echo: self.echo,
        }
    }
}

impl Query<'_> {
    /// The DNSSEC-OK bit from the query's EDNS.
    pub(crate) fn dnssec_ok(&self) -> bool {
        self.edns.is_some_and(|(_, d)| d)
    }
}

fn u16_at(b: &[u8], i: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(i)?, *b.get(i + 1)?]))
}

/// Parses a standard query with exactly one IN question, no answer or authority records and
/// at most an OPT record; `None` for anything else.
pub(crate) fn parse_query(b: &[u8]) -> Option<Query<'_>> {
    let id = u16_at(b, 0)?;
    let flags = u16_at(b, 2)?;
    let (qd, an, ns, ar) = (u16_at(b, 4)?, u16_at(b, 6)?, u16_at(b, 8)?, u16_at(b, 10)?);
    // QR must be 0 and the opcode QUERY; one question; no answers or authorities.
    if flags & 0x8000 != 0 || (flags >> 11) & 0xf != 0 || qd != 1 || an != 0 || ns != 0 || ar > 1 {
        return None;
    }
    let mut i = 12;
    let mut name = String::with_capacity(64);
    loop {
        let len = usize::from(*b.get(i)?);
        i += 1;
        if len == 0 {
            break;
        }
        if len > 63 || name.len() + len > 253 {
            return None;
        }
        let label = b.get(i..i + len)?;
        // Only letters, digits, '-' and '_': anything else (dots inside labels, bytes that
        // need escaping) goes the full way.
        if !label
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'_')
        {
            return None;
        }
        if !name.is_empty() {
            name.push('.');
        }
        name.extend(label.iter().map(|c| c.to_ascii_lowercase() as char));
        i += len;
    }
    let qtype = u16_at(b, i)?;
    let qclass = u16_at(b, i + 2)?;
    if qclass != 1 {
        return None;
    }
    let question = b.get(12..i + 4)?;
    i += 4;
    let mut options: &[u8] = &[];
    let edns = if ar == 1 {
        // OPT: root name, type 41, class = payload size, TTL = ext-rcode, version, flags.
        if *b.get(i)? != 0 || u16_at(b, i + 1)? != 41 {
            return None;
        }
        let payload = u16_at(b, i + 3)?;
        let version = *b.get(i + 6)?;
        let do_bit = u16_at(b, i + 7)? & 0x8000 != 0;
        let rdlen = usize::from(u16_at(b, i + 9)?);
        if version != 0 || i + 11 + rdlen != b.len() {
            return None;
        }
        options = b.get(i + 11..)?;
        Some((payload.max(512), do_bit))
    } else {
        if i != b.len() {
            return None;
        }
        None
    };
    Some(Query {
        id,
        rd: flags & 0x0100 != 0,
        cd: flags & 0x0010 != 0,
        name,
        qtype,
        question,
        edns,
        options,
        echo: None,
    })
}

/// The data of the first OPT record in a whole message (empty when there is none), for the
/// full path, which has only the raw bytes hickory decoded.
pub(crate) fn opt_rdata(b: &[u8]) -> &[u8] {
    find_opt(b).unwrap_or_default()
}

fn find_opt(b: &[u8]) -> Option<&[u8]> {
    let (qd, an, ns, ar) = (u16_at(b, 4)?, u16_at(b, 6)?, u16_at(b, 8)?, u16_at(b, 10)?);
    if ar == 0 {
        return None;
    }
    let mut i = 12;
    for _ in 0..qd {
        i = skip_name(b, i)? + 4;
    }
    for n in 0..(u32::from(an) + u32::from(ns) + u32::from(ar)) {
        i = skip_name(b, i)?;
        let rtype = u16_at(b, i)?;
        let rdlen = usize::from(u16_at(b, i + 8)?);
        let rdata = b.get(i + 10..i + 10 + rdlen)?;
        if rtype == 41 && n >= u32::from(an) + u32::from(ns) {
            return Some(rdata);
        }
        i += 10 + rdlen;
    }
    None
}

/// Skips a (possibly compressed) name starting at `i`; returns the index after it.
fn skip_name(b: &[u8], mut i: usize) -> Option<usize> {
    for _ in 0..128 {
        let len = *b.get(i)?;
        match len {
            0 => return Some(i + 1),
            l if l & 0xc0 == 0xc0 => return Some(i + 2),
            l if l & 0xc0 == 0 => i += 1 + usize::from(l),
            _ => return None,
        }
    }
    None
}

/// Cuts an encoded answer that is longer than `max` bytes down to what a UDP client takes
/// (RFC 1035 §4.2.1, RFC 2181 §9): the header with TC set, the question, then whole records
/// from the start of the answer, authority and additional sections, in order and up to the
/// last whole record set that fits, and the OPT record when there is one (RFC 6891 §7: the
/// client still learns our size and the extended code). Compression pointers only point
/// backwards, so the records kept read as they did.
///
/// A message that does not walk as expected (it is ours, so that would be a bug) gets the
/// header and question alone, with TC set: still a valid answer that sends the client to TCP.
pub(crate) fn truncate(b: &[u8], max: usize) -> Vec<u8> {
    truncate_records(b, max).unwrap_or_else(|| {
        // The header alone (no question) if even the question does not read.
        let end = question_end(b).unwrap_or(12);
        let mut out = b.get(..end).unwrap_or_default().to_vec();
        if end == 12
            && let Some(qd) = out.get_mut(4..6)
        {
            qd.fill(0);
        }
        set_truncated(&mut out, [0, 0, 0]);
        out
    })
}

/// The query name as policy sees it: lower-case, without the trailing dot. A name sent as
/// raw UTF-8 (some clients do; DNS labels may hold any bytes) is read label by label as UTF-8
/// and normalised like its IDNA form, so `bücher.example` in raw bytes is matched as
/// `xn--bcher-kva.example`, as list entries are. A name whose labels are not UTF-8, or hold a
/// dot, keeps its escaped presentation form, which names nothing a list holds.
pub(crate) fn policy_name(name: &Name) -> String {
    if !name.iter().all(<[u8]>::is_ascii)
        && let Some(unicode) = unicode_name(name)
    {
        return unicode;
    }
    // Letters, digits, `-` and `_` read as the fast path reads them (`parse_query`).
    // hickory's presentation form escapes a label's leading `-` as `\-`, which no host parses
    // from: `-x.blocked.example` went unfiltered over the full path while the fast path
    // blocked it (found by fuzzing, fuzz/fuzz_targets/dns_wire.rs).
    let plain = name.iter().all(|label| {
        label
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'_')
    });
    if plain {
        let mut out = String::with_capacity(name.len());
        for label in name.iter() {
            if !out.is_empty() {
                out.push('.');
            }
            out.extend(label.iter().map(|c| c.to_ascii_lowercase() as char));
        }
        return out;
    }
    let ascii = name.to_ascii();
    ascii.trim_end_matches('.').to_ascii_lowercase()
}

fn unicode_name(name: &Name) -> Option<String> {
    let mut text = String::with_capacity(64);
    for label in name.iter() {
        let label = std::str::from_utf8(label).ok()?;
        if label.contains('.') {
            return None;
        }
        if !text.is_empty() {
            text.push('.');
        }
        text.push_str(label);
    }
    let mut out = String::with_capacity(64);
    normalise_name_into(&text, &mut out).ok()?;
    Some(out)
}

/// One record of an encoded message, for [`truncate`].
struct Rr {
    section: usize,
    end: usize,
    /// Owner (decompressed, lower-case), type and class: the record set it belongs to.
    set: (Vec<u8>, u16, u16),
}

fn truncate_records(b: &[u8], max: usize) -> Option<Vec<u8>> {
    let counts = [u16_at(b, 6)?, u16_at(b, 8)?, u16_at(b, 10)?];
    let sections_at = question_end(b)?;
    let mut i = sections_at;
    let mut rrs = Vec::new();
    let mut opt: Option<&[u8]> = None;
    for (section, n) in counts.into_iter().enumerate() {
        for _ in 0..n {
            let start = i;
            let owner = read_name(b, i)?;
            i = skip_name(b, i)?;
            let (rtype, class) = (u16_at(b, i)?, u16_at(b, i + 2)?);
            let end = i + 10 + usize::from(u16_at(b, i + 8)?);
            if end > b.len() {
                return None;
            }
            if section == 2 && rtype == 41 {
                opt = Some(b.get(start..end)?);
            } else if opt.is_some() {
                // Records after the OPT record: not how Hedgerow writes answers.
                return None;
            } else {
                rrs.push(Rr {
                    section,
                    end,
                    set: (owner, rtype, class),
                });
            }
            i = end;
        }
    }
    let opt = opt.unwrap_or_default();
    let room = max.saturating_sub(opt.len());
    let mut keep = rrs.iter().take_while(|r| r.end <= room).count();
    // Never half a record set: back up to where the set that did not fit begins.
    if let Some(cut) = rrs.get(keep) {
        while keep > 0
            && rrs
                .get(keep - 1)
                .is_some_and(|r| r.section == cut.section && r.set == cut.set)
        {
            keep -= 1;
        }
    }
    let kept = rrs.get(..keep)?;
    let end = kept.last().map_or(sections_at, |r| r.end);
    let mut per_section = [0u16; 3];
    for r in kept {
        per_section[r.section] += 1;
    }
    per_section[2] += u16::from(!opt.is_empty());
    let mut out = Vec::with_capacity(end + opt.len());
    out.extend_from_slice(b.get(..end)?);
    out.extend_from_slice(opt);
    set_truncated(&mut out, per_section);
    Some(out)
}

/// Where the question section of a whole message ends.
fn question_end(b: &[u8]) -> Option<usize> {
    let mut i = 12;
    for _ in 0..u16_at(b, 4)? {
        i = skip_name(b, i)? + 4;
    }
    (i <= b.len()).then_some(i)
}

/// Sets TC and the answer, authority and additional counts of the header at the start of `out`
/// (at least 12 bytes).
fn set_truncated(out: &mut [u8], counts: [u16; 3]) {
    if let Some(flags) = out.get_mut(2) {
        *flags |= 0x02;
    }
    for (n, at) in counts.into_iter().zip([6, 8, 10]) {
        if let Some(field) = out.get_mut(at..at + 2) {
            field.copy_from_slice(&n.to_be_bytes());
        }
    }
}

/// Reads a (possibly compressed) name at `i` as length-prefixed lower-case labels, for
/// comparing owners.
fn read_name(b: &[u8], mut i: usize) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(32);
    for _ in 0..128 {
        let len = *b.get(i)?;
        match len {
            0 => return Some(out),
            l if l & 0xc0 == 0xc0 => i = usize::from(u16_at(b, i)? & 0x3fff),
            l if l & 0xc0 == 0 => {
                let label = b.get(i + 1..i + 1 + usize::from(l))?;
                out.push(l);
                out.extend(label.iter().map(u8::to_ascii_lowercase));
                i += 1 + usize::from(l);
            }
            _ => return None,
        }
    }
    None
}

/// What walking an encoded answer found.
pub(crate) struct Layout {
    /// Where the answer section starts (after header and question).
    pub(crate) sections_at: usize,
    /// Offsets, from `sections_at`, of the TTL of every record in answer and authority.
    pub(crate) ttl_offsets: Vec<u16>,
    pub(crate) answers: u16,
    pub(crate) authorities: u16,
}

/// Walks a whole encoded message (one question, no additional section).
pub(crate) fn layout(b: &[u8]) -> Option<Layout> {
    let (qd, an, ns) = (u16_at(b, 4)?, u16_at(b, 6)?, u16_at(b, 8)?);
    if qd != 1 {
        return None;
    }
    let mut i = skip_name(b, 12)? + 4;
    let sections_at = i;
    let mut ttl_offsets = Vec::with_capacity(usize::from(an) + usize::from(ns));
    for _ in 0..(u32::from(an) + u32::from(ns)) {
        i = skip_name(b, i)?;
        let ttl_at = i + 4;
        let rdlen = usize::from(u16_at(b, i + 8)?);
        ttl_offsets.push(u16::try_from(ttl_at - sections_at).ok()?);
        i += 10 + rdlen;
        if i > b.len() {
            return None;
        }
    }
    Some(Layout {
        sections_at,
        ttl_offsets,
        answers: an,
        authorities: ns,
    })
}

/// Writes a response header: our answer to query `q` with `rcode` and the given counts.
pub(crate) fn header(out: &mut Vec<u8>, q: &Query<'_>, rcode: u8, an: u16, ns: u16) {
    out.extend_from_slice(&q.id.to_be_bytes());
    // QR, RD echoed, RA, CD echoed; no AA, no TC.
    let flags: u16 = 0x8000
        | if q.rd { 0x0100 } else { 0 }
        | 0x0080
        | if q.cd { 0x0010 } else { 0 }
        | u16::from(rcode & 0xf);
    out.extend_from_slice(&flags.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&an.to_be_bytes());
    out.extend_from_slice(&ns.to_be_bytes());
    out.extend_from_slice(&u16::from(q.edns.is_some()).to_be_bytes());
    out.extend_from_slice(q.question);
}

/// Appends our OPT record when the client used EDNS: our payload size, its DO bit echoed,
/// and the client-subnet option sent back when there is one.
pub(crate) fn opt(out: &mut Vec<u8>, q: &Query<'_>, payload: u16) {
    if let Some((_, do_bit)) = q.edns {
        out.push(0);
        out.extend_from_slice(&41u16.to_be_bytes());
        out.extend_from_slice(&payload.to_be_bytes());
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&(if do_bit { 0x8000u16 } else { 0 }).to_be_bytes());
        match &q.echo {
            None => out.extend_from_slice(&0u16.to_be_bytes()),
            Some(echo) => {
                let data = echo.data();
                // At most 20 bytes: the lengths fit.
                let len = data.len() as u16;
                out.extend_from_slice(&(len + 4).to_be_bytes());
                out.extend_from_slice(&8u16.to_be_bytes());
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(data);
            }
        }
    }
}

/// Appends a record owned by the question name (a compression pointer to offset 12).
pub(crate) fn record(out: &mut Vec<u8>, rtype: u16, ttl: u32, rdata: &[u8]) {
    out.extend_from_slice(&[0xc0, 0x0c]);
    out.extend_from_slice(&rtype.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&ttl.to_be_bytes());
    let len = u16::try_from(rdata.len()).unwrap_or(0);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(rdata.get(..usize::from(len)).unwrap_or_default());
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query as HQuery};
    use hickory_proto::rr::rdata::{A, TXT};
    use hickory_proto::rr::{RData, Record, RecordType};

    fn query(name: &str, edns: bool) -> Vec<u8> {
        let mut m = Message::new(0x1234, MessageType::Query, OpCode::Query);
        m.metadata.recursion_desired = true;
        m.add_query(HQuery::query(
            Name::from_ascii(name).unwrap(),
            RecordType::AAAA,
        ));
        if edns {
            let mut e = Edns::new();
            e.set_max_payload(1232);
            e.flags_mut().dnssec_ok = true;
            m.set_edns(e);
        }
        m.to_vec().unwrap()
    }

    #[test]
    fn reads_plain_queries() {
        let b = query("WWW.Example.COM.", true);
        let q = parse_query(&b).unwrap();
        assert_eq!(
            (q.id, q.rd, q.name.as_str(), q.qtype),
            (0x1234, true, "www.example.com", 28)
        );
        assert_eq!(q.edns, Some((1232, true)));
        let b = query("example.com.", false);
        assert_eq!(parse_query(&b).unwrap().edns, None);
    }

    #[test]
    fn both_paths_see_the_same_options() {
        use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsOption};
        let mut m = Message::new(7, MessageType::Query, OpCode::Query);
        m.add_query(HQuery::query(
            Name::from_ascii("example.com.").unwrap(),
            RecordType::A,
        ));
        let mut e = Edns::new();
        e.options_mut().insert(EdnsOption::Subnet(ClientSubnet::new(
            "10.20.1.7".parse().unwrap(),
            32,
            0,
        )));
        e.options_mut()
            .insert(EdnsOption::Unknown(65001, vec![2, 0, 0x5e, 0, 0, 7]));
        m.set_edns(e);
        let b = m.to_vec().unwrap();
        let fast = parse_query(&b).unwrap().options;
        assert_eq!(
            fast,
            [
                0, 8, 0, 8, 0, 1, 32, 0, 10, 20, 1, 7, 0xfd, 0xe9, 0, 6, 2, 0, 0x5e, 0, 0, 7
            ]
        );
        assert_eq!(opt_rdata(&b), fast);
        assert!(
            parse_query(&query("example.com.", true))
                .unwrap()
                .options
                .is_empty()
        );
        assert!(opt_rdata(&query("example.com.", false)).is_empty());
        assert!(opt_rdata(&b[..b.len() - 1]).is_empty());
    }

    /// Found by fuzzing (fuzz/fuzz_targets/dns_wire.rs): the answer and authority counts
    /// were added as u16, which overflows (a panic in debug builds) for counts such as
    /// 0x0a00 + 0xfff9.
    #[test]
    fn layout_of_a_message_whose_counts_overflow_u16() {
        let crash = [
            0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0x0a, 0x00, 0xff, 0xf9, 0xff, 0x00, 0x00, 0x00,
            0x00, 0x40, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00,
            0x01, 0x00, 0x00,
        ];
        assert!(layout(&crash).is_none());
    }

    #[test]
    fn leaves_anything_unusual_to_the_full_path() {
        let mut b = query("example.com.", false);
        b[2] |= 0x80; // a response
        assert!(parse_query(&b).is_none());
        let mut b = query("example.com.", false);
        b.push(0); // trailing junk
        assert!(parse_query(&b).is_none());
        assert!(parse_query(&query("a\\.b.example.com.", false)).is_none());
        for n in 0..40 {
            let b = query("example.com.", true);
            assert!(parse_query(&b[..n.min(b.len())]).is_none() || n >= b.len());
        }
    }

    /// An answer with an RRset of `a` A records, one of `txt` TXT records, and an authority
    /// SOA-like TXT record, with EDNS when `edns`.
    fn big_answer(a: u8, txt: usize, edns: bool) -> Vec<u8> {
        let name = Name::from_ascii("big.example.").unwrap();
        let mut m = Message::new(9, MessageType::Response, OpCode::Query);
        m.add_query(HQuery::query(name.clone(), RecordType::A));
        for i in 0..a {
            m.add_answer(Record::from_rdata(
                name.clone(),
                60,
                RData::A(A::new(192, 0, 2, i)),
            ));
        }
        let other = Name::from_ascii("other.example.").unwrap();
        for i in 0..txt {
            m.add_answer(Record::from_rdata(
                other.clone(),
                60,
                RData::TXT(TXT::new(vec![format!("{i:02}{}", "x".repeat(60))])),
            ));
        }
        m.add_authority(Record::from_rdata(
            name,
            60,
            RData::TXT(TXT::new(vec!["authority".into()])),
        ));
        if edns {
            let mut e = Edns::new();
            e.set_max_payload(1232);
            m.set_edns(e);
        }
        m.to_vec().unwrap()
    }

    /// Record sets as (owner, type, count), in order, for one section.
    fn sets(records: &[Record]) -> Vec<(String, RecordType, usize)> {
        let mut out: Vec<(String, RecordType, usize)> = Vec::new();
        for r in records {
            let key = (r.name.to_ascii(), r.record_type());
            match out.last_mut() {
                Some(last) if (last.0.as_str(), last.1) == (key.0.as_str(), key.1) => last.2 += 1,
                _ => out.push((key.0, key.1, 1)),
            }
        }
        out
    }

    #[test]
    fn truncation_keeps_whole_record_sets_and_the_opt_record() {
        for edns in [false, true] {
            let whole = big_answer(20, 8, edns);
            let full = Message::from_vec(&whole).unwrap();
            let full_sets = sets(&full.answers);
            // Header, question and OPT: sent whatever the size, and under 512 bytes.
            let least = 12 + 17 + if edns { 11 } else { 0 };
            assert_eq!(truncate(&whole, 0).len(), least);
            for max in 12..whole.len() {
                let cut = truncate(&whole, max);
                assert!(cut.len() <= max.max(least), "{max}: {} bytes", cut.len());
                let mut d = hickory_proto::serialize::binary::BinDecoder::new(&cut);
                let m = <Message as hickory_proto::serialize::binary::BinDecodable>::read(&mut d)
                    .unwrap_or_else(|e| panic!("{max}: {e}"));
                assert!(d.is_empty(), "{max}: trailing bytes");
                assert!(m.metadata.truncation, "{max}");
                assert_eq!(m.queries.len(), 1);
                // Only whole sets, and a prefix of the sets in order.
                let got = sets(&m.answers);
                assert!(got.len() <= full_sets.len());
                assert_eq!(got[..], full_sets[..got.len()], "{max}");
                if m.authorities.len() == 1 {
                    assert_eq!(m.answers.len(), full.answers.len(), "{max}");
                }
                // The OPT record stays whenever the client sent EDNS (512 bytes always hold
                // header, question and OPT).
                if max >= 512 {
                    assert_eq!(m.edns.is_some(), edns, "{max}");
                }
            }
        }
        // Room for exactly the A set: 12 header + 17 question + 20 × 16.
        let whole = big_answer(20, 8, false);
        let m = Message::from_vec(&truncate(&whole, 12 + 17 + 20 * 16)).unwrap();
        assert_eq!(m.answers.len(), 20);
        let m = Message::from_vec(&truncate(&whole, 12 + 17 + 20 * 16 - 1)).unwrap();
        assert_eq!(m.answers.len(), 0, "nineteen of twenty is half a set");
    }

    #[test]
    fn truncation_of_an_unreadable_message_leaves_header_and_question() {
        let whole = big_answer(3, 0, false);
        let mut broken = whole.clone();
        broken[7] = 50; // fifty answers promised
        let m = Message::from_vec(&truncate(&broken, 512)).unwrap();
        assert!(m.metadata.truncation);
        assert_eq!((m.queries.len(), m.answers.len()), (1, 0));
        let m = Message::from_vec(&truncate(&whole[..14], 512)).unwrap();
        assert!(m.metadata.truncation && m.queries.is_empty());
    }

    #[test]
    fn raw_utf8_names_are_read_as_their_idna_form() {
        let raw = |labels: &[&[u8]]| Name::from_labels(labels.iter().copied()).unwrap();
        let unicode = raw(&["Bücher".as_bytes(), b"Example"]);
        assert_eq!(policy_name(&unicode), "xn--bcher-kva.example");
        assert_eq!(
            policy_name(&Name::from_ascii("XN--bcher-kva.example.").unwrap()),
            "xn--bcher-kva.example"
        );
        assert_eq!(
            policy_name(&Name::from_ascii("WWW.Example.COM.").unwrap()),
            "www.example.com"
        );
        assert_eq!(policy_name(&Name::root()), "");
        // Not UTF-8, or a dot inside a label: the escaped form, which no list holds.
        let latin1 = raw(&[&b"b\xfccher"[..], b"example"]);
        assert!(
            policy_name(&latin1).starts_with("b\\"),
            "{}",
            policy_name(&latin1)
        );
        let dotted = raw(&["bücher.example".as_bytes(), b"net"]);
        assert_ne!(policy_name(&dotted), "xn--bcher-kva.example.net");
    }
}
