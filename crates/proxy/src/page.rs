//! The block pages and the PAC file.

use hedgerow_model::{Tier, Verdict};

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
    let r = reference_text(reference);
    if verdict.tier == Tier::Illegal {
        return illegal_page(verdict, time, &r, review);
    }
    let category = verdict
        .category
        .as_ref()
        .map_or("a blocked category", |c| c.as_str());
    let reason = match verdict.tier {
        Tier::LocalBlock => "the school has blocked this address".to_owned(),
        Tier::Circumvention => "it would get round the school's filtering".to_owned(),
        _ => format!(
            "it is in the <strong>{}</strong> category",
            escape(category)
        ),
    };
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Blocked by the school's filter</title>
<style>body{{font-family:sans-serif;max-width:40em;margin:3em auto;color:#222}}code{{word-break:break-all}}</style></head>
<body>
<h1>This page is blocked</h1>
<p>The school's web filter blocked <code id="url">{url}</code> because {reason}.</p>
<p>Category: <span id="category">{category}</span><br>
Time: <span id="time">{time}</span><br>
Reference: <code id="reference">{r}</code></p>
<p>If you need this page for your work, {review}, and give them the reference above so they
can find this request and review it.</p>
</body></html>
"#,
        url = escape(url),
        category = escape(category),
        time = escape(time),
        review = escape(review),
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
fn illegal_page(verdict: &Verdict, time: &str, reference: &str, review: &str) -> String {
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
</body></html>
"#
    )
}

/// The PAC/WPAD file: everything through the proxy except plain host names and private
/// ranges, which go direct.
pub(crate) fn pac(proxy: &str) -> String {
    format!(
        r#"function FindProxyForURL(url, host) {{
  if (isPlainHostName(host) || host === "localhost") return "DIRECT";
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
        assert!(page.contains("adult"));
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
