//! The block pages and the PAC file.

use hedgerow_config::PacDirect;
use hedgerow_model::{Tier, Verdict};
use ipnet::IpNet;

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The reference shown on a block page and stored on the access event.
pub(crate) fn reference_text(r: u64) -> String {
    format!("{r:016x}")
}

/// The block page: what was blocked, why, when, the reference and how to ask for a review.
/// The illegal tier gets its own page that shows nothing of the address or the entry.
pub(crate) fn block_page(
    url: &str,
    verdict: &Verdict,
    time: &str,
    reference: u64,
    review: &str,
) -> String {
    page_with(url, verdict, time, reference, review, "")
}

/// The block page with `extra` HTML (the review form) at its end.
pub(crate) fn page_with(
    url: &str,
    verdict: &Verdict,
    time: &str,
    reference: u64,
    review: &str,
    extra: &str,
) -> String {
    let r = reference_text(reference);
    if verdict.tier == Tier::Illegal {
        return illegal_page(verdict, time, &r, review, extra);
    }
    // The vocabulary's display name for people, with the stable id beside it (what the logs,
    // breach rules and a review request quote).
    let category = verdict
        .category
        .as_ref()
        .map_or("a blocked category", |c| c.display_name());
    let category_id = verdict.category.as_ref().map_or("", |c| c.as_str());
    let (title, heading) = match verdict.tier {
        Tier::NotApproved => (
            "Not on the approved list",
            "This page is not on the approved list",
        ),
        _ => ("Blocked by the school's filter", "This page is blocked"),
    };
    let (reason, category) = match verdict.tier {
        Tier::LocalBlock => ("the school has blocked this address".to_owned(), category),
        Tier::Circumvention => (
            "it would get round the school's filtering".to_owned(),
            category,
        ),
        Tier::NotApproved => (
            "it is <strong>not on the approved list</strong>: your group can use the sites the \
             school has approved, and no others"
                .to_owned(),
            verdict
                .category
                .as_ref()
                .map_or("not on the approved list", |c| c.display_name()),
        ),
        _ => (
            format!(
                "it is in the <strong>{}</strong> category",
                escape(category)
            ),
            category,
        ),
    };
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;max-width:40em;margin:3em auto;color:#222}}code{{word-break:break-all}}textarea{{width:100%}}</style></head>
<body>
<h1>{heading}</h1>
<p>The school's web filter blocked <code id="url">{url}</code> because {reason}.</p>
<p>Category: <span id="category">{category}</span>{category_id}<br>
Time: <span id="time">{time}</span><br>
Reference: <code id="reference">{r}</code></p>
<p>If you need this page for your work, {review}, and give them the reference above so they
can find this request and review it.</p>
{extra}</body></html>
"#,
        url = escape(url),
        category = escape(category),
        category_id = if category_id.is_empty() {
            String::new()
        } else {
            format!(" (<code id=\"category-id\">{}</code>)", escape(category_id))
        },
        time = escape(time),
        review = escape(review),
    )
}

/// The "request a review" form of the DNS block page, and where its status is shown.
pub(crate) fn review_form(reference: u64) -> String {
    let r = reference_text(reference);
    format!(
        r#"<form id="review" method="post" action="/review">
<input type="hidden" name="reference" value="{r}">
<p><label for="reason">Or ask for a review here: why do you need this page?</label><br>
<textarea id="reason" name="reason" rows="4" maxlength="2000" required></textarea></p>
<p><label for="name">Your name (optional)</label>
<input id="name" name="name" maxlength="100"></p>
<p><button type="submit">Request a review</button></p>
</form>
<p>Asked already? <a id="status" href="/review/{r}">See how request {r} is going</a>.</p>
"#
    )
}

/// The page that shows a review request's status.
pub(crate) fn review_status(
    reference: u64,
    target: &str,
    status: &str,
    asked: &str,
    note: Option<&str>,
) -> String {
    let r = reference_text(reference);
    let note = note.map_or_else(String::new, |n| {
        format!(
            "<p>Note from the school: <span id=\"note\">{}</span></p>\n",
            escape(n)
        )
    });
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Review request {r}</title>
<style>body{{font-family:sans-serif;max-width:40em;margin:3em auto;color:#222}}</style></head>
<body>
<h1>Review request <code id="reference">{r}</code></h1>
<p>For: <code id="target">{target}</code><br>
Asked: {asked}<br>
Status: <strong id="review-status">{status}</strong></p>
{note}<p>The school's IT staff look at each request. Come back to this page to see how it is going.</p>
</body></html>
"#,
        target = escape(target),
        asked = escape(asked),
        status = escape(status),
    )
}

/// A short page for everything else the block page server says.
pub(crate) fn message(title: &str, text: &str) -> String {
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;max-width:40em;margin:3em auto;color:#222}}</style></head>
<body>
<h1>{title}</h1>
<p>{text}</p>
<form method="get" action="/review"><p><label for="ref">Look up a review request by its reference:</label>
<input id="ref" name="ref" maxlength="16"> <button type="submit">Look up</button></p></form>
</body></html>
"#,
        title = escape(title),
        text = escape(text),
    )
}

/// Which authority's list an illegal-tier verdict came from, by its category: the police
/// Counter Terrorism Internet Referral Unit's list for `terrorism` and `extremism`, else the
/// Internet Watch Foundation's.
fn is_police_list(verdict: &Verdict) -> bool {
    verdict
        .category
        .as_ref()
        .is_some_and(|c| matches!(c.as_str(), "terrorism" | "extremism"))
}

/// The illegal tier's pages. The IWF page follows the IWF's recommended splash-page content
/// (why access was denied, that deliberate attempts may be an offence, how to appeal, and
/// confidential help from Stop It Now); the police list has its own. Neither shows the
/// address asked for, nor the entry: only the time and the reference.
fn illegal_page(
    verdict: &Verdict,
    time: &str,
    reference: &str,
    review: &str,
    extra: &str,
) -> String {
    let review = escape(review);
    let time = escape(time);
    let (title, body) = if is_police_list(verdict) {
        (
            "Access denied: unlawful terrorist content",
            format!(
                r#"<p>Access to this page has been denied because it has been identified by the police
Counter Terrorism Internet Referral Unit (CTIRU) as containing unlawful terrorist material.</p>
<p>Deliberately viewing, downloading or sharing terrorist material may be a criminal offence.</p>
<p id="appeal">If you think this page has been blocked in error, {review} and quote the reference
below; the school can ask the police to review the listing.</p>
<p id="help">If you are worried that you or someone you know is being drawn into extremism, talk to
a trusted adult or the school's Designated Safeguarding Lead. Confidential advice is available from
ACT Early on 0800 011 3764 (actearly.uk). You can report online terrorist content at
gov.uk/report-terrorism.</p>"#
            ),
        )
    } else {
        (
            "Access denied: potentially illegal content",
            format!(
                r#"<p>Access has been denied by the school's web filter because this page may contain
indecent images of children as identified by the Internet Watch Foundation (IWF).</p>
<p>Deliberate attempts to access this or related material may result in you committing a criminal
offence. The consequences of deliberately accessing such material are likely to be serious.</p>
<p id="appeal">If you think this page has been blocked in error, {review} and quote the reference
below. You can also appeal to the IWF through its content assessment appeals process
(iwf.org.uk/appeals).</p>
<p id="help">If you are worried about your own or someone else's online behaviour, you can get
confidential, non-judgemental help from Stop It Now on 0808 1000 900 or at stopitnow.org.uk.
If you have seen something that upset you, speak to a trusted adult.</p>"#
            ),
        )
    };
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;max-width:40em;margin:3em auto;color:#222}}h1{{color:#a00}}</style></head>
<body>
<h1>{title}</h1>
{body}
<p class="meta">Time: {time}<br>Reference: <code id="reference">{reference}</code></p>
{extra}</body></html>
"#
    )
}

/// The PAC/WPAD file for `config`, pointing browsers at `proxy` (`host:port`). See [`pac`].
pub(crate) fn pac_for(config: &hedgerow_config::Config, proxy: &str) -> String {
    let networks: Vec<IpNet> = config
        .groups
        .iter()
        .flat_map(|g| g.networks.iter().copied())
        .collect();
    let direct = config.proxy.as_ref().map_or(&[][..], |p| &p.pac_direct[..]);
    pac(proxy, &networks, direct)
}

/// Addresses the proxy refuses as destinations (loopback, private, link-local), which must
/// therefore go direct: IPv4 as (network, mask), IPv6 as (network, prefix length).
const PRIVATE_V4: [(&str, &str); 5] = [
    ("10.0.0.0", "255.0.0.0"),
    ("172.16.0.0", "255.240.0.0"),
    ("192.168.0.0", "255.255.0.0"),
    ("127.0.0.0", "255.0.0.0"),
    ("169.254.0.0", "255.255.0.0"),
];
const PRIVATE_V6: [(&str, u8); 3] = [("::1", 128), ("fe80::", 10), ("fc00::", 7)];

/// Group networks wider than these are catch-alls (a guest group on `0.0.0.0/0`), not the
/// school's own networks: sending them direct would let every IP-literal URL skip the proxy.
const WIDEST_V4: u8 = 8;
const WIDEST_V6: u8 = 32;

/// The PAC/WPAD file. Direct: IP literals in the private, loopback and link-local ranges
/// (the proxy refuses those destinations, so through it they would break) and in the
/// groups' networks; plain host names, `localhost`, `.local`; and the domains and networks
/// of `[proxy] pac_direct`. Everything else goes through the proxy, with no fallback to
/// direct (that would skip filtering whenever the proxy is unreachable).
///
/// Names are never resolved (`dnsResolve`): that costs a lookup on every request, and a
/// name the DNS front blocks resolves to the block page's (private) address, which would
/// skip the proxy. Internal names that resolve to internal addresses go in `pac_direct`.
pub(crate) fn pac(proxy: &str, networks: &[IpNet], direct: &[PacDirect]) -> String {
    let proxy: String = proxy
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '-' | '[' | ']'))
        .collect();
    let private = PRIVATE_V4
        .iter()
        .filter_map(|(n, m)| {
            let mask: std::net::Ipv4Addr = m.parse().ok()?;
            let len = u8::try_from(u32::from(mask).leading_ones()).ok()?;
            ipnet::Ipv4Net::new(n.parse().ok()?, len)
                .ok()
                .map(IpNet::V4)
        })
        .chain(
            PRIVATE_V6
                .iter()
                .filter_map(|(n, b)| ipnet::Ipv6Net::new(n.parse().ok()?, *b).ok().map(IpNet::V6)),
        );
    let mut direct_nets: Vec<IpNet> = Vec::new();
    let wanted = private.chain(
        networks
            .iter()
            .filter(|n| match n {
                IpNet::V4(n) => n.prefix_len() >= WIDEST_V4,
                IpNet::V6(n) => n.prefix_len() >= WIDEST_V6,
            })
            .copied()
            .chain(direct.iter().filter_map(|d| match d {
                PacDirect::Network(n) => Some(*n),
                PacDirect::Domain(_) => None,
            })),
    );
    // Each network once, and none inside one already listed (a group on 10.20.0.0/16 is
    // covered by 10.0.0.0/8).
    for n in wanted {
        if !direct_nets.iter().any(|d| d.contains(&n)) {
            direct_nets.push(n);
        }
    }
    let mut v4: Vec<(String, String)> = Vec::new();
    let mut v6: Vec<(String, u8)> = Vec::new();
    for n in direct_nets {
        match n {
            IpNet::V4(n) => v4.push((n.network().to_string(), n.netmask().to_string())),
            IpNet::V6(n) => v6.push((n.network().to_string(), n.prefix_len())),
        }
    }
    let mut domains = Vec::new();
    for d in direct {
        if let PacDirect::Domain(name) = d {
            domains.push(format!("\"{name}\""));
        }
    }
    let v4 = v4
        .iter()
        .map(|(n, m)| format!("[\"{n}\", \"{m}\"]"))
        .collect::<Vec<_>>()
        .join(",\n  ");
    let v6 = v6
        .iter()
        .map(|(n, b)| format!("[\"{n}\", {b}]"))
        .collect::<Vec<_>>()
        .join(",\n  ");
    let domains = domains.join(",\n  ");
    format!(
        r#"// Hedgerow's proxy auto-config. Direct: plain host names, localhost, .local, the
// domains below and their subdomains, and IP literals in the networks below (private,
// loopback, link-local and the school's own). Everything else goes through the proxy.
var HEDGEROW_DIRECT_DOMAINS = [
  {domains}
];
var HEDGEROW_DIRECT_V4 = [
  {v4}
];
var HEDGEROW_DIRECT_V6 = [
  {v6}
];

// An IPv6 address as eight 16-bit numbers, or null.
function hedgerowV6(text) {{
  var s = text, tail = null, i;
  var last = s.lastIndexOf(":");
  if (last >= 0 && s.indexOf(".", last) > last) {{
    var q = s.substring(last + 1).split(".");
    if (q.length != 4) return null;
    tail = [parseInt(q[0], 10) * 256 + parseInt(q[1], 10), parseInt(q[2], 10) * 256 + parseInt(q[3], 10)];
    s = s.substring(0, last + 1) + "0:0";
  }}
  var halves = s.split("::");
  if (halves.length > 2) return null;
  var head = halves[0] == "" ? [] : halves[0].split(":");
  var groups = head;
  if (halves.length == 2) {{
    var rest = halves[1] == "" ? [] : halves[1].split(":");
    var fill = 8 - head.length - rest.length;
    if (fill < 1) return null;
    groups = head.slice();
    for (i = 0; i < fill; i++) groups.push("0");
    groups = groups.concat(rest);
  }}
  if (groups.length != 8) return null;
  var out = [];
  for (i = 0; i < 8; i++) {{
    if (!/^[0-9a-f]{{1,4}}$/.test(groups[i])) return null;
    out.push(parseInt(groups[i], 16));
  }}
  if (tail) {{ out[6] = tail[0]; out[7] = tail[1]; }}
  return out;
}}

// Whether IPv6 address `a` is in `net`/`bits`.
function hedgerowInNet6(a, net, bits) {{
  var x = hedgerowV6(a), y = hedgerowV6(net);
  if (!x || !y) return false;
  for (var i = 0; i < 8 && bits > 0; i++, bits -= 16) {{
    var mask = bits >= 16 ? 0xffff : (0xffff << (16 - bits)) & 0xffff;
    if ((x[i] & mask) != (y[i] & mask)) return false;
  }}
  return true;
}}

function FindProxyForURL(url, host) {{
  var h = host.toLowerCase();
  if (h.charAt(0) == "[") h = h.substring(1, h.length - 1);
  if (h.charAt(h.length - 1) == ".") h = h.substring(0, h.length - 1);
  var i;
  if (h.indexOf(":") >= 0) {{
    for (i = 0; i < HEDGEROW_DIRECT_V6.length; i++) {{
      if (hedgerowInNet6(h, HEDGEROW_DIRECT_V6[i][0], HEDGEROW_DIRECT_V6[i][1])) return "DIRECT";
    }}
    return "PROXY {proxy}";
  }}
  if (/^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$/.test(h)) {{
    for (i = 0; i < HEDGEROW_DIRECT_V4.length; i++) {{
      if (isInNet(h, HEDGEROW_DIRECT_V4[i][0], HEDGEROW_DIRECT_V4[i][1])) return "DIRECT";
    }}
    return "PROXY {proxy}";
  }}
  if (isPlainHostName(h) || h == "localhost" || dnsDomainIs(h, ".local") || dnsDomainIs(h, ".localhost")) return "DIRECT";
  for (i = 0; i < HEDGEROW_DIRECT_DOMAINS.length; i++) {{
    var d = HEDGEROW_DIRECT_DOMAINS[i];
    if (h == d || dnsDomainIs(h, "." + d)) return "DIRECT";
  }}
  return "PROXY {proxy}";
}}
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use hedgerow_model::{Action, Category};

    #[test]
    fn pages_escape_and_hide_the_illegal_entry() {
        let mut v = Verdict::default_allow();
        v.action = Action::Block;
        v.tier = Tier::Category;
        v.category = Some(Category::new("adult").unwrap());
        let page = block_page("http://x/<script>", &v, "10:00", 0xabc, "ask IT");
        assert!(page.contains("&lt;script&gt;"));
        assert!(page.contains("<span id=\"category\">Pornography</span>"));
        assert!(page.contains("<code id=\"category-id\">adult</code>"));
        assert!(page.contains("0000000000000abc"));
        v.tier = Tier::Illegal;
        v.category = Some(Category::new("child-abuse").unwrap());
        let page = block_page("http://secret.example/path", &v, "10:00", 1, "ask IT");
        assert!(!page.contains("secret.example"));
        assert!(page.contains("Internet Watch Foundation"));
        assert!(page.contains("Stop It Now"));
        assert!(page.contains("criminal"));
        assert!(page.contains("appeal"));
        v.category = Some(Category::new("terrorism").unwrap());
        let page = block_page("http://secret.example/path", &v, "10:00", 1, "ask IT");
        assert!(!page.contains("secret.example"));
        assert!(page.contains("Counter Terrorism Internet Referral Unit"));
        assert!(!page.contains("Internet Watch Foundation"));
    }
}
