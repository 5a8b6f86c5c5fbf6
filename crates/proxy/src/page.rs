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
        return format!(
            r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Access denied</title>
<style>body{{font-family:sans-serif;max-width:40em;margin:3em auto;color:#222}}h1{{color:#a00}}</style></head>
<body>
<h1>Access denied: potentially illegal content</h1>
<p>Access to this page has been denied because it has been identified as containing
potentially illegal content, on a list maintained by the Internet Watch Foundation or the
police.</p>
<p>If you think this is wrong, or you are worried about something you have seen online,
speak to a trusted adult. You can report content to the IWF at report.iwf.org.uk.</p>
<p class="meta">Time: {time}<br>Reference: <code id="reference">{r}</code></p>
</body></html>
"#
        );
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
        let page = block_page("http://secret.example/path", &v, "10:00", 1, "ask IT");
        assert!(!page.contains("secret.example"));
        assert!(page.contains("potentially illegal content"));
    }
}
