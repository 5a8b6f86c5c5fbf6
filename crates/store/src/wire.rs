//! How values are stored: a format byte, then postcard.

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;

use hedgerow_model::{AccessEvent, Action, Category, Front, Outcome, Severity, Tier};
use serde::{Deserialize, Serialize};

use crate::StoreError;

/// The format of every value this build writes, except batches of access events. A reader
/// refuses other formats by name rather than guess.
pub(crate) const FORMAT: u8 = 1;

/// The format of a batch of access events: a dictionary of the batch's repeated strings and
/// addresses, then each event with indexes into it and its time as an offset. Batches in
/// [`FORMAT`] (a plain sequence of [`WireEvent`]s) are still read.
pub(crate) const BATCH_FORMAT: u8 = 2;

/// The format of a breach record: the breach without its triggers, which are kept one a
/// record beside it, and how many there are. Breaches in [`FORMAT`] (the breach with no
/// trigger list) are still read, with their first request as their one trigger.
pub(crate) const BREACH_FORMAT: u8 = 2;

pub(crate) const NANOS_PER_DAY: i64 = 86_400 * 1_000_000_000;

/// One access event as stored: the time as nanoseconds, strings borrowed when encoding.
#[derive(Serialize, Deserialize)]
pub(crate) struct WireEvent<'a> {
    pub(crate) t: i64,
    front: Front,
    client: IpAddr,
    #[serde(borrow)]
    device: Option<Cow<'a, str>>,
    #[serde(borrow)]
    user: Option<Cow<'a, str>>,
    #[serde(borrow)]
    group: Option<Cow<'a, str>>,
    #[serde(borrow)]
    target: Cow<'a, str>,
    #[serde(borrow)]
    qtype: Option<Cow<'a, str>>,
    outcome: Outcome,
    action: Action,
    tier: Tier,
    #[serde(borrow)]
    category: Option<Cow<'a, str>>,
    #[serde(borrow)]
    list: Option<Cow<'a, str>>,
    #[serde(borrow)]
    rule: Option<Cow<'a, str>>,
    #[serde(borrow)]
    method: Option<Cow<'a, str>>,
    #[serde(borrow)]
    search: Option<Cow<'a, str>>,
    concern: Option<Severity>,
    bytes: u64,
    reference: Option<u64>,
}

#[cfg(test)]
fn b(s: &Option<impl AsRef<str>>) -> Option<Cow<'_, str>> {
    s.as_ref().map(|v| Cow::Borrowed(v.as_ref()))
}

fn arc(s: Option<Cow<'_, str>>) -> Option<Arc<str>> {
    s.map(|v| Arc::from(v.as_ref()))
}

impl<'a> WireEvent<'a> {
    #[cfg(test)]
    pub(crate) fn from_event(e: &'a AccessEvent) -> Self {
        Self {
            t: nanos(e.time),
            front: e.front,
            client: e.client,
            device: b(&e.device),
            user: b(&e.user),
            group: b(&e.group),
            target: Cow::Borrowed(&e.target),
            qtype: b(&e.qtype),
            outcome: e.outcome,
            action: e.action,
            tier: e.tier,
            category: e.category.as_ref().map(|c| Cow::Borrowed(c.as_str())),
            list: b(&e.list),
            rule: b(&e.rule),
            method: b(&e.method),
            search: b(&e.search),
            concern: e.concern,
            bytes: e.bytes,
            reference: e.reference,
        }
    }

    pub(crate) fn into_event(self) -> AccessEvent {
        AccessEvent {
            time: from_nanos(self.t),
            front: self.front,
            client: self.client,
            device: arc(self.device),
            user: arc(self.user),
            group: arc(self.group),
            target: self.target.into_owned(),
            qtype: self.qtype.map(|q| Cow::Owned(q.into_owned())),
            outcome: self.outcome,
            action: self.action,
            tier: self.tier,
            category: self.category.and_then(|c| Category::new(&c).ok()),
            list: arc(self.list),
            rule: arc(self.rule),
            method: self.method.map(|m| Cow::Owned(m.into_owned())),
            search: self.search.map(|s| s.into()),
            concern: self.concern,
            bytes: self.bytes,
            reference: self.reference,
        }
    }
}

/// Nanoseconds since the Unix epoch, clamped to what an i64 holds.
pub(crate) fn nanos(t: jiff::Timestamp) -> i64 {
    i64::try_from(t.as_nanosecond()).unwrap_or(if t.as_nanosecond() < 0 {
        i64::MIN
    } else {
        i64::MAX
    })
}

pub(crate) fn from_nanos(n: i64) -> jiff::Timestamp {
    jiff::Timestamp::from_nanosecond(i128::from(n)).unwrap_or(jiff::Timestamp::UNIX_EPOCH)
}

/// Keys sort by time: nanoseconds with the sign bit flipped, big-endian.
pub(crate) fn time_key(n: i64) -> [u8; 8] {
    ((n as u64) ^ (1 << 63)).to_be_bytes()
}

/// Encodes a value behind the format byte; postcard writes straight after it.
pub(crate) fn encode<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    encode_as(FORMAT, value)
}

/// Encodes a value behind the format byte `format`.
pub(crate) fn encode_as<T: Serialize + ?Sized>(format: u8, value: &T) -> Vec<u8> {
    let mut out = vec![format];
    append(value, &mut out);
    out
}

/// Reads postcard from `bytes` (after the format byte), naming `tree` if it is damaged.
pub(crate) fn postcard_value<'a, T: Deserialize<'a>>(
    tree: &str,
    bytes: &'a [u8],
) -> Result<T, StoreError> {
    postcard::from_bytes(bytes).map_err(|e| StoreError::Decode {
        tree: tree.to_owned(),
        reason: e.to_string(),
    })
}

/// Appends `value` in postcard to `out`. Serializing plain data into a Vec cannot fail; if it
/// did, `out` would hold a truncated value that the reader refuses.
fn append<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) {
    let _ = postcard::serialize_with_flavor(value, Out(out));
}

/// A postcard output that appends to a `Vec`.
struct Out<'a>(&'a mut Vec<u8>);

impl postcard::ser_flavors::Flavor for Out<'_> {
    type Output = ();

    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.0.push(data);
        Ok(())
    }

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.0.extend_from_slice(data);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

/// Decodes a value written by [`encode`], checking the format byte.
pub(crate) fn decode<'a, T: Deserialize<'a>>(tree: &str, bytes: &'a [u8]) -> Result<T, StoreError> {
    match bytes.split_first() {
        Some((&FORMAT, rest)) => postcard_value(tree, rest),
        Some((&found, _)) => Err(StoreError::Format {
            tree: tree.to_owned(),
            found,
            expected: FORMAT,
        }),
        None => Err(StoreError::Decode {
            tree: tree.to_owned(),
            reason: "empty value".into(),
        }),
    }
}

/// A batch of access events as stored in [`BATCH_FORMAT`]. The string fields an event shares
/// with others (device, user, group, query type, category, list, rule, method) are indexes
/// into `strings`, plus one (0 is none); the client is an index into `clients`. A DNS event
/// is about 35 bytes this way, against about 90 as a [`WireEvent`].
#[derive(Serialize, Deserialize)]
struct Batch<'a> {
    /// The time of the first event, in nanoseconds; each event holds its offset from it.
    base: i64,
    #[serde(borrow)]
    strings: Vec<Cow<'a, str>>,
    clients: Vec<IpAddr>,
    #[serde(borrow)]
    events: Vec<Compact<'a>>,
}

#[derive(Serialize, Deserialize)]
struct Compact<'a> {
    dt: i64,
    front: Front,
    client: u32,
    device: u32,
    user: u32,
    group: u32,
    #[serde(borrow)]
    target: Cow<'a, str>,
    qtype: u32,
    outcome: Outcome,
    action: Action,
    tier: Tier,
    category: u32,
    list: u32,
    rule: u32,
    method: u32,
    #[serde(borrow)]
    search: Option<Cow<'a, str>>,
    concern: Option<Severity>,
    bytes: u64,
    reference: Option<u64>,
}

/// Most events in one stored value (DNS events are ~30 bytes, so [`MAX_BATCH_BYTES`] is reached first).
pub(crate) const MAX_BATCH: usize = 4096;
/// Encoded bytes after which a batch is sealed. sled writes a page bigger than a quarter of
/// its 512 KiB segment to a file of its own (a blob), created and deleted for every write and
/// read back whole when the page is next needed, and a leaf page holds up to 17 values. At
/// 96 KiB (about 35 KiB once compressed) every leaf became a blob: the writer spent 68% of
/// its time in the kernel and cost 0.48 µs a DNS query. At 16 KiB (5-7 KiB compressed) a
/// leaf stays under 128 KiB, no blob is written, and the writer costs about half as much.
pub(crate) const MAX_BATCH_BYTES: usize = 16 << 10;
/// Bodies a builder keeps for reuse: a writer round's worth at 130k events a second.
const MAX_SPARE_BODIES: usize = 32;
/// The most a stored batch may claim to hold once decompressed (a batch is sealed near
/// [`MAX_BATCH_BYTES`]; one event may be as long as a URL is allowed to be).
const MAX_RAW_BATCH: usize = 16 << 20;

/// The device index's id of a named device.
pub(crate) fn named_device_id(name: &str) -> String {
    format!("d:{name}")
}

/// The device index's id of a device with no name: its address.
pub(crate) fn address_device_id(ip: IpAddr) -> String {
    format!("ip:{ip}")
}

/// A device as the index groups events: by name (an index into the batch's strings), or by
/// address (an index into its clients) when it has none.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum DeviceKey {
    Name(u32),
    Ip(u32),
}

/// A batch of access events being encoded, one event at a time, as they are recorded: each
/// event is written while its fields are still in the recording thread's cache, and the
/// event itself is freed by the thread that made it.
#[derive(Default)]
pub(crate) struct BatchBuilder {
    day: i64,
    base: i64,
    count: usize,
    strings: Vec<Box<str>>,
    index: foldhash::HashMap<Box<str>, u32>,
    clients: Vec<IpAddr>,
    client_index: foldhash::HashMap<IpAddr, u32>,
    body: Vec<u8>,
    /// For each device, the time of its first event here and its events' positions.
    devices: foldhash::HashMap<DeviceKey, (i64, Vec<u32>)>,
    /// Per string field of an event: the index of the last string seen there (0: none).
    last: [u32; 8],
    /// Bodies of written batches, handed back by the writer for the next batches to fill.
    spare: Vec<Vec<u8>>,
    /// What each event counts towards (see [`tally_key`]): one `u64` pushed an event, summed
    /// by the writer into the batch's counts (`counts.rs`), so recording stays a push.
    tally: Vec<u64>,
    /// Blocked events per site (outside the illegal tier), for the most-blocked sites.
    sites: foldhash::HashMap<Box<str>, u32>,
}

/// An event's counter key in a batch: its hour of the day, disposition, and its group's and
/// category's indexes in the batch's strings (plus one; 0 is none), packed in a `u64`. A
/// batch holds at most `8 × MAX_BATCH` strings, well under 2^24.
pub(crate) fn tally_key(hour: u8, disposition: u8, group: u32, category: u32) -> u64 {
    (u64::from(hour) << 56)
        | (u64::from(disposition) << 48)
        | (u64::from(group.min(0xFF_FFFF)) << 24)
        | u64::from(category.min(0xFF_FFFF))
}

/// The parts of a [`tally_key`]: hour, disposition, group index, category index.
pub(crate) fn untally(key: u64) -> (u8, u8, u32, u32) {
    (
        (key >> 56) as u8,
        (key >> 48) as u8,
        ((key >> 24) & 0xFF_FFFF) as u32,
        (key & 0xFF_FFFF) as u32,
    )
}

/// A batch taken from its builder: the parts of its value, moved rather than copied, so
/// sealing on a recording thread costs next to nothing; the writer assembles the value.
pub(crate) struct Sealed {
    pub(crate) day: i64,
    /// The time of its first event (nanoseconds): its key in the day's events.
    pub(crate) first: i64,
    pub(crate) events: usize,
    strings: Vec<Box<str>>,
    clients: Vec<IpAddr>,
    body: Vec<u8>,
    devices: Vec<(DeviceKey, i64, Vec<u32>)>,
    /// Each event's [`tally_key`], in order.
    tally: Vec<u64>,
    /// Blocked events per site.
    sites: Vec<(Box<str>, u32)>,
}

/// The writer's reusable buffers for [`Sealed::value_with`]: a batch is assembled and
/// compressed in them, so writing one allocates only its stored value. (Built fresh for each
/// batch, the two buffers of about 17 KiB were a quarter of the writer's time in page faults
/// and unmapping, in the appliance's allocator, which maps blocks that size on their own.)
#[derive(Default)]
pub(crate) struct ValueScratch {
    raw: Vec<u8>,
    compressed: Vec<u8>,
}

impl Sealed {
    /// The stored value, in [`BATCH_FORMAT`].
    #[cfg(test)]
    pub(crate) fn value(&self) -> Vec<u8> {
        self.value_with(&mut ValueScratch::default())
    }

    /// The stored value, in [`BATCH_FORMAT`]: a format byte, the raw size (u32, little
    /// endian) and the LZ4 block, as `lz4_flex`'s size-prepended functions read it.
    pub(crate) fn value_with(&self, scratch: &mut ValueScratch) -> Vec<u8> {
        let head = Head {
            base: self.first,
            strings: &self.strings,
            clients: &self.clients,
        };
        let raw = &mut scratch.raw;
        raw.clear();
        append(&head, raw);
        let mut len = [0u8; 10];
        raw.extend_from_slice(varint(self.events, &mut len));
        raw.extend_from_slice(&self.body);
        let compressed = &mut scratch.compressed;
        compressed.resize(lz4_flex::block::get_maximum_output_size(raw.len()), 0);
        let block = match lz4_flex::block::compress_into(raw, compressed) {
            Ok(n) => compressed.get(..n).unwrap_or_default(),
            // The buffer is the largest the block can be; should that ever not hold, the
            // allocating form has no such limit.
            Err(_) => {
                *compressed = lz4_flex::block::compress(raw);
                compressed.as_slice()
            }
        };
        let size = u32::try_from(raw.len()).unwrap_or(u32::MAX);
        let mut value = Vec::with_capacity(1 + 4 + block.len());
        value.push(BATCH_FORMAT);
        value.extend_from_slice(&size.to_le_bytes());
        value.extend_from_slice(block);
        value
    }

    /// What the batch's events count towards: per hour, group, category and disposition,
    /// and blocked events per site (see `counts.rs`).
    pub(crate) fn counts(&self) -> crate::counts::BatchCounts {
        let mut keys = self.tally.clone();
        keys.sort_unstable();
        let name = |i: u32| -> Option<String> {
            (i as usize)
                .checked_sub(1)
                .and_then(|i| self.strings.get(i))
                .map(|s| s.to_string())
        };
        let mut rows = Vec::new();
        for run in keys.chunk_by(|a, b| a == b) {
            let (hour, disposition, group, category) = untally(run[0]);
            rows.push(crate::counts::Row {
                hour,
                group: name(group),
                category: name(category),
                disposition,
                n: u32::try_from(run.len()).unwrap_or(u32::MAX),
            });
        }
        let mut sites: Vec<(String, u32)> = self
            .sites
            .iter()
            .map(|(s, n)| (s.to_string(), *n))
            .collect();
        sites.sort_unstable();
        crate::counts::BatchCounts { rows, sites }
    }

    /// Gives back the body's allocation for the next batch to fill.
    pub(crate) fn into_body(self) -> Vec<u8> {
        let mut body = self.body;
        body.clear();
        body
    }

    /// The batch's rows of the device index: the device id (`d:NAME`, or `ip:ADDRESS` for a
    /// device without a name), the time of its first event here, and its events' positions.
    pub(crate) fn devices(&self) -> impl Iterator<Item = (String, i64, &[u32])> + '_ {
        self.devices.iter().map(|(key, t, positions)| {
            let id = match *key {
                DeviceKey::Name(i) => named_device_id(
                    (i as usize)
                        .checked_sub(1)
                        .and_then(|i| self.strings.get(i))
                        .map_or("", |s| &**s),
                ),
                DeviceKey::Ip(i) => match self.clients.get(i as usize) {
                    Some(ip) => address_device_id(*ip),
                    None => "ip:".to_owned(),
                },
            };
            (id, *t, positions.as_slice())
        })
    }
}

impl BatchBuilder {
    /// Adds one event. When it belongs to another day than the batch, or the batch is full,
    /// the batch is sealed first and returned; the event starts the next one.
    pub(crate) fn push(&mut self, e: &AccessEvent) -> Option<Sealed> {
        let t = nanos(e.time);
        let day = t.div_euclid(NANOS_PER_DAY);
        let sealed = if self.count > 0
            && (day != self.day || self.count >= MAX_BATCH || self.body.len() >= MAX_BATCH_BYTES)
        {
            self.seal()
        } else {
            None
        };
        if self.count == 0 {
            self.day = day;
            self.base = t;
        }
        let client = self.client(e.client);
        let device = self.string(0, e.device.as_deref());
        let compact = Compact {
            dt: t.saturating_sub(self.base),
            front: e.front,
            client,
            device,
            user: self.string(1, e.user.as_deref()),
            group: self.string(2, e.group.as_deref()),
            target: Cow::Borrowed(&e.target),
            qtype: self.string(3, e.qtype.as_deref()),
            outcome: e.outcome,
            action: e.action,
            tier: e.tier,
            category: self.string(4, e.category.as_ref().map(Category::as_str)),
            list: self.string(5, e.list.as_deref()),
            rule: self.string(6, e.rule.as_deref()),
            method: self.string(7, e.method.as_deref()),
            search: e.search.as_deref().map(Cow::Borrowed),
            concern: e.concern,
            bytes: e.bytes,
            reference: e.reference,
        };
        append(&compact, &mut self.body);
        let disposition = e.disposition();
        // `rem_euclid`, not `t - day * NANOS_PER_DAY`: that overflows for a time near the
        // earliest an `i64` holds (found by the store_batch fuzz target).
        let hour = u8::try_from(t.rem_euclid(NANOS_PER_DAY) / 3_600_000_000_000).unwrap_or(0);
        self.tally.push(tally_key(
            hour,
            crate::counts::disposition_code(disposition),
            compact.group,
            compact.category,
        ));
        if disposition == hedgerow_model::Disposition::Block && e.tier != Tier::Illegal {
            let site = crate::breach::site_of(&e.target).trim_end_matches('.');
            match self.sites.get_mut(site) {
                Some(n) => *n += 1,
                None => {
                    self.sites.insert(site.into(), 1);
                }
            }
        }
        let key = if device == 0 {
            DeviceKey::Ip(client)
        } else {
            DeviceKey::Name(device)
        };
        let position = u32::try_from(self.count).unwrap_or(u32::MAX);
        self.devices
            .entry(key)
            .or_insert_with(|| (t, Vec::new()))
            .1
            .push(position);
        self.count += 1;
        sealed
    }

    /// The batch so far, ready for the store; the builder is left empty (keeping its
    /// allocations) for the next one.
    pub(crate) fn seal(&mut self) -> Option<Sealed> {
        if self.count == 0 {
            return None;
        }
        let next_body = self
            .spare
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(MAX_BATCH_BYTES + 1024));
        let sealed = Sealed {
            day: self.day,
            first: self.base,
            events: self.count,
            strings: std::mem::take(&mut self.strings),
            clients: std::mem::take(&mut self.clients),
            body: std::mem::replace(&mut self.body, next_body),
            devices: self
                .devices
                .drain()
                .map(|(key, (t, positions))| (key, t, positions))
                .collect(),
            tally: std::mem::replace(&mut self.tally, Vec::with_capacity(self.count)),
            sites: self.sites.drain().collect(),
        };
        self.count = 0;
        self.last = [0; 8];
        self.index.clear();
        self.client_index.clear();
        Some(sealed)
    }

    /// Keeps `body` (emptied) for a later batch, rather than allocating one.
    pub(crate) fn give_back(&mut self, body: Vec<u8>) {
        if self.spare.len() < MAX_SPARE_BODIES {
            self.spare.push(body);
        }
    }

    /// A dictionary index for `s`, plus one (0 is none). `field` names the event field: most
    /// events repeat the last event's group, list or query type, so the string last seen in
    /// that field is compared before the text is hashed.
    fn string(&mut self, field: usize, s: Option<&str>) -> u32 {
        let Some(s) = s else { return 0 };
        if let Some(&i) = self.last.get(field)
            && i > 0
            && self
                .strings
                .get(i as usize - 1)
                .is_some_and(|last| **last == *s)
        {
            return i;
        }
        let i = match self.index.get(s) {
            Some(&i) => i,
            None => {
                self.strings.push(s.into());
                let i = u32::try_from(self.strings.len()).unwrap_or(u32::MAX);
                self.index.insert(s.into(), i);
                i
            }
        };
        if let Some(last) = self.last.get_mut(field) {
            *last = i;
        }
        i
    }

    fn client(&mut self, ip: IpAddr) -> u32 {
        if let Some(&i) = self.client_index.get(&ip) {
            return i;
        }
        let i = u32::try_from(self.clients.len()).unwrap_or(u32::MAX);
        self.clients.push(ip);
        self.client_index.insert(ip, i);
        i
    }
}

/// The fields of a [`Batch`] before its events.
#[derive(Serialize)]
struct Head<'a> {
    base: i64,
    strings: &'a [Box<str>],
    clients: &'a [IpAddr],
}

/// postcard's length prefix: LEB128.
fn varint(mut n: usize, buf: &mut [u8; 10]) -> &[u8] {
    let mut i = 0;
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            buf[i] = byte;
            return &buf[..=i];
        }
        buf[i] = byte | 0x80;
        i += 1;
    }
}

/// Decodes a batch of access events, in [`BATCH_FORMAT`] or the older [`FORMAT`].
pub(crate) fn decode_batch(tree: &str, bytes: &[u8]) -> Result<Vec<AccessEvent>, StoreError> {
    Ok(decode_batch_if(tree, bytes, |_| true)?.unwrap_or_default())
}

/// A batch's dictionary: every string its events name (device, user, group, category, list,
/// rule, query type, method) and every client address, without its events.
#[derive(Deserialize)]
pub(crate) struct Dictionary<'a> {
    _base: i64,
    #[serde(borrow)]
    pub(crate) strings: Vec<Cow<'a, str>>,
    pub(crate) clients: Vec<IpAddr>,
}

/// Decodes a batch only if `may_match` says its dictionary could hold a match: a filter on
/// a user, group, category or address passes over most batches of a busy day without
/// decoding their events (`None`). Batches in the older format have no dictionary and are
/// always decoded.
pub(crate) fn decode_batch_if(
    tree: &str,
    bytes: &[u8],
    may_match: impl Fn(&Dictionary<'_>) -> bool,
) -> Result<Option<Vec<AccessEvent>>, StoreError> {
    match bytes.first() {
        Some(&BATCH_FORMAT) => {
            let bad = |reason: String| StoreError::Decode {
                tree: tree.to_owned(),
                reason,
            };
            let compressed = &bytes[1..];
            // The size comes first; a corrupt one must not make us allocate gigabytes.
            let size = compressed
                .get(..4)
                .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
            if size as usize > MAX_RAW_BATCH {
                return Err(bad(format!("batch claims {size} bytes")));
            }
            let raw = lz4_flex::block::decompress_size_prepended(compressed)
                .map_err(|e| bad(e.to_string()))?;
            let (head, _) = postcard::take_from_bytes::<Dictionary<'_>>(&raw)
                .map_err(|e| bad(e.to_string()))?;
            if !may_match(&head) {
                return Ok(None);
            }
            let batch: Batch<'_> = postcard::from_bytes(&raw).map_err(|e| bad(e.to_string()))?;
            Ok(Some(batch.into_events()))
        }
        Some(&FORMAT) => {
            let wire: Vec<WireEvent<'_>> = decode(tree, bytes)?;
            Ok(Some(wire.into_iter().map(WireEvent::into_event).collect()))
        }
        Some(&found) => Err(StoreError::Format {
            tree: tree.to_owned(),
            found,
            expected: BATCH_FORMAT,
        }),
        None => Err(StoreError::Decode {
            tree: tree.to_owned(),
            reason: "empty value".into(),
        }),
    }
}

impl Batch<'_> {
    fn into_events(self) -> Vec<AccessEvent> {
        // Each dictionary string becomes one shared allocation.
        let shared: Vec<Arc<str>> = self.strings.iter().map(|s| Arc::from(s.as_ref())).collect();
        let categories: Vec<Option<Category>> =
            self.strings.iter().map(|s| Category::new(s).ok()).collect();
        let get = |i: u32| -> Option<Arc<str>> {
            let i = usize::try_from(i).ok()?.checked_sub(1)?;
            shared.get(i).cloned()
        };
        let cow = |i: u32| get(i).map(|s| Cow::Owned(s.as_ref().to_owned()));
        let unspecified = IpAddr::from([0u8, 0, 0, 0]);
        self.events
            .into_iter()
            .map(|c| AccessEvent {
                time: from_nanos(self.base.saturating_add(c.dt)),
                front: c.front,
                client: self
                    .clients
                    .get(c.client as usize)
                    .copied()
                    .unwrap_or(unspecified),
                device: get(c.device),
                user: get(c.user),
                group: get(c.group),
                target: c.target.into_owned(),
                qtype: cow(c.qtype),
                outcome: c.outcome,
                action: c.action,
                tier: c.tier,
                category: usize::try_from(c.category)
                    .ok()
                    .and_then(|i| i.checked_sub(1))
                    .and_then(|i| categories.get(i).cloned().flatten()),
                list: get(c.list),
                rule: get(c.rule),
                method: cow(c.method),
                search: c.search.map(|s| s.into()),
                concern: c.concern,
                bytes: c.bytes,
                reference: c.reference,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use hedgerow_model::{AccessEvent, Action, Category, Front, Outcome, Severity, Tier};

    use super::{
        BatchBuilder, MAX_BATCH, MAX_BATCH_BYTES, WireEvent, decode_batch, encode, from_nanos,
    };

    fn event(i: i64, device: Option<&str>) -> AccessEvent {
        let mut e = AccessEvent::new(
            from_nanos(1_795_000_000_000_000_000 + i * 7_000),
            if i % 2 == 0 { Front::Dns } else { Front::Proxy },
            format!("10.0.{}.{}", i % 3, i % 7)
                .parse()
                .unwrap_or([0u8; 4].into()),
            format!("host{i}.example.org"),
        );
        e.device = device.map(Arc::from);
        e.group = Some(Arc::from(if i % 5 == 0 { "staff" } else { "pupils" }));
        e.qtype = Some(if i % 2 == 0 {
            "A".into()
        } else {
            "AAAA".into()
        });
        if i % 4 == 0 {
            e.outcome = Outcome::Blocked;
            e.action = Action::Block;
            e.tier = Tier::Category;
            e.category = Category::new("gambling").ok();
            e.list = Some("gambling".into());
            e.rule = Some(format!("example{}.org", i % 9).into());
        }
        if i % 3 == 0 {
            e.user = Some("alice".into());
            e.method = Some("GET".into());
            e.search = Some("how to tie a knot".into());
            e.concern = Some(Severity::High);
            e.bytes = u64::try_from(i).unwrap_or(0) * 1000;
            e.reference = Some(0xdead_beef + u64::try_from(i).unwrap_or(0));
        }
        e
    }

    fn round_trip(events: &[AccessEvent]) -> Vec<AccessEvent> {
        let mut b = BatchBuilder::default();
        let mut out = Vec::new();
        let mut sealed = Vec::new();
        for e in events {
            sealed.extend(b.push(e));
        }
        sealed.extend(b.seal());
        for s in &sealed {
            let evs = decode_batch("events", &s.value()).unwrap_or_default();
            assert_eq!(evs.len(), s.events);
            out.extend(evs);
        }
        out
    }

    #[test]
    fn a_batch_reads_back_every_field_of_every_event() {
        let events: Vec<AccessEvent> = (0..500)
            .map(|i| event(i, (i % 2 == 0).then_some("Lab-PC-1")))
            .collect();
        assert_eq!(round_trip(&events), events);
    }

    #[test]
    fn batches_split_when_full_and_at_a_new_day_and_keep_order() {
        let mut events: Vec<AccessEvent> = (0..(MAX_BATCH as i64 + 10))
            .map(|i| {
                AccessEvent::new(
                    from_nanos(1_795_000_000_000_000_000 + i * 7_000),
                    Front::Dns,
                    [10, 0, 0, 1].into(),
                    format!("h{i}.uk"),
                )
            })
            .collect();
        // Out of order by a little (threads record concurrently), then a new day.
        events.swap(3, 4);
        let mut next_day = event(1, Some("pc"));
        next_day.time = from_nanos(1_795_000_000_000_000_000 + 86_400_000_000_000);
        events.push(next_day);
        let mut b = BatchBuilder::default();
        let mut sealed = Vec::new();
        for e in &events {
            sealed.extend(b.push(e));
        }
        sealed.extend(b.seal());
        // Full batches (by count or bytes), the rest of the day, then the next day alone.
        let (last, day_one) = sealed.split_last().expect("batches were sealed");
        let (rest, full) = day_one.split_last().expect("the first day has batches");
        assert!(!full.is_empty());
        for batch in full {
            assert!(batch.events == MAX_BATCH || batch.body.len() >= MAX_BATCH_BYTES);
            assert_eq!(batch.day, rest.day);
        }
        assert_eq!(last.day, rest.day + 1);
        assert_eq!(last.events, 1);
        let held: usize = sealed.iter().map(|b| b.events).sum();
        assert_eq!(held, events.len());
        assert_eq!(round_trip(&events), events);
    }

    #[test]
    fn a_batch_is_sealed_once_it_holds_its_byte_limit() {
        let long: Vec<AccessEvent> = (0..2000)
            .map(|i| {
                let mut e = event(i, None);
                e.target = format!("http://host{i}.example.org/{}", "p".repeat(200));
                e
            })
            .collect();
        let mut b = BatchBuilder::default();
        let first = long.iter().find_map(|e| b.push(e));
        let Some(first) = first else {
            panic!("2000 events of 250 bytes fill a batch");
        };
        assert!(first.events < MAX_BATCH);
        let raw = first.body.len();
        assert!(
            (MAX_BATCH_BYTES..MAX_BATCH_BYTES + 400).contains(&raw),
            "{raw}"
        );
    }

    #[test]
    fn device_rows_name_devices_or_addresses_with_their_positions() {
        let events: Vec<AccessEvent> = (0..6)
            .map(|i| event(i, (i < 2).then_some("Lab-PC-1")))
            .collect();
        let mut b = BatchBuilder::default();
        for e in &events {
            assert!(b.push(e).is_none());
        }
        let Some(sealed) = b.seal() else {
            panic!("a batch of six");
        };
        let mut rows: Vec<(String, Vec<u32>)> = sealed
            .devices()
            .map(|(id, _, p)| (id, p.to_vec()))
            .collect();
        rows.sort();
        let mut want = vec![("d:Lab-PC-1".to_owned(), vec![0, 1])];
        for (i, e) in events.iter().enumerate().skip(2) {
            want.push((format!("ip:{}", e.client), vec![i as u32]));
        }
        want.sort();
        assert_eq!(rows, want);
    }

    #[test]
    fn batches_in_the_first_format_are_still_read() {
        let events: Vec<AccessEvent> = (0..50).map(|i| event(i, Some("pc"))).collect();
        let wire: Vec<WireEvent<'_>> = events.iter().map(WireEvent::from_event).collect();
        assert_eq!(decode_batch("events", &encode(&wire)).ok(), Some(events));
    }

    /// A batch in [`super::BATCH_FORMAT`] as the build before outcomes had their own verdicts
    /// wrote it (commit 33e4144): a DNS refusal, rate limit and SERVFAIL and a proxy refusal
    /// stored with the action `block`, a proxy 502, a real block and a forwarded query.
    const OLD_BATCH: &str = "0248010000f11480809cbdabbf8fe9310606707570696c73014103474554046e657773056164756c740d0600f0012e6578616d706c6501000a00000707000100f203010d7777772e6262632e636f2e756b02040118007100000080a8d6b90d000c24001705240040d0acf30e2e000c240017062400f902f882ad16010000000119687474703a2f2f7300102fa7001200780010034b005180a0d9e61d30001f1a300002a473706f72740006000704310040c8afa0253a001a01e80070020101060505061a00600080f085da2c0a000ca900b00000070000000000000000";

    #[test]
    fn an_old_batch_reads_with_what_happened_as_its_verdict() {
        use hedgerow_model::Disposition;
        let bytes: Vec<u8> = (0..OLD_BATCH.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&OLD_BATCH[i..i + 2], 16).unwrap_or_default())
            .collect();
        let events = decode_batch("events", &bytes).unwrap_or_default();
        let seen: Vec<(Front, Outcome, Action, Disposition)> = events
            .iter()
            .map(|e| (e.front, e.outcome, e.action, e.disposition()))
            .collect();
        assert_eq!(
            seen,
            [
                (
                    Front::Dns,
                    Outcome::Refused,
                    Action::Block,
                    Disposition::Refused
                ),
                (
                    Front::Dns,
                    Outcome::RateLimited,
                    Action::Block,
                    Disposition::RateLimited
                ),
                (
                    Front::Dns,
                    Outcome::Failed,
                    Action::Block,
                    Disposition::Error
                ),
                (
                    Front::Proxy,
                    Outcome::Refused,
                    Action::Block,
                    Disposition::Refused
                ),
                (
                    Front::Proxy,
                    Outcome::Failed,
                    Action::Allow,
                    Disposition::Error
                ),
                (
                    Front::Dns,
                    Outcome::Blocked,
                    Action::Block,
                    Disposition::Block
                ),
                (
                    Front::Dns,
                    Outcome::Forwarded,
                    Action::Allow,
                    Disposition::Allow
                ),
            ]
        );
        assert!(
            events
                .iter()
                .all(|e| e.client == std::net::IpAddr::from([10, 0, 0, 7]))
        );
        assert_eq!(events[3].target, "http://www.bbc.co.uk/news");
        assert_eq!(events[5].category, Category::new("adult").ok());
    }

    #[test]
    fn a_batch_keeps_the_outcomes_added_after_format_2() {
        let mut e = event(1, None);
        e.outcome = Outcome::Invalid;
        let mut f = event(2, None);
        f.outcome = Outcome::Failed;
        assert_eq!(round_trip(&[e.clone(), f.clone()]), [e, f]);
    }

    #[test]
    fn the_earliest_and_latest_times_a_store_can_hold_round_trip() {
        // A batch decoded from a damaged value may claim any time; encoding it again (export,
        // import) must not overflow working out its hour.
        for t in [i64::MIN, i64::MIN + 1, -1, 0, i64::MAX] {
            let mut e = event(1, Some("pc"));
            e.time = from_nanos(t);
            let back = round_trip(std::slice::from_ref(&e));
            assert_eq!(back.len(), 1, "{t}");
            assert_eq!(back[0].time, e.time, "{t}");
        }
    }

    #[test]
    fn a_damaged_batch_is_an_error_not_a_panic() {
        let events: Vec<AccessEvent> = (0..50).map(|i| event(i, None)).collect();
        let mut b = BatchBuilder::default();
        for e in &events {
            let _ = b.push(e);
        }
        let value = b.seal().map(|s| s.value()).unwrap_or_default();
        // Every truncation, a byte flipped at every position, an unknown format, a size
        // claiming gigabytes.
        for n in 0..value.len() {
            let _ = decode_batch("events", &value[..n]);
        }
        for i in 1..value.len() {
            let mut v = value.clone();
            v[i] ^= 0x5a;
            let _ = decode_batch("events", &v);
        }
        assert!(decode_batch("events", &[9, 1, 2]).is_err());
        assert!(decode_batch("events", &[2, 0xff, 0xff, 0xff, 0x7f, 0]).is_err());
        assert!(decode_batch("events", &[]).is_err());
    }
}
