//! The browser harness itself (src/browser.rs), against small pages this test serves on
//! loopback: real headless Chromium fills a form by its labels and submits it, axe-core flags
//! an unlabelled field and passes its labelled twin, JavaScript off really is off, two
//! browsers keep separate cookies, and screenshots are real PNGs of the window's width.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;

use hedgerow_testkit::Browser;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

/// A page with every kind of label the harness reads: `for=`, a wrapping label, a select.
const FORM: &str = r#"<!doctype html><html lang="en"><head><title>Form</title></head><body>
<main><h1>Report a site</h1>
<form method="get" action="/echo">
  <label for="site">Web address</label> <input id="site" name="site" type="text">
  <label>Your note <textarea name="note"></textarea></label>
  <label for="severity">Severity</label>
  <select id="severity" name="severity"><option>Low</option><option>High</option></select>
  <label><input type="checkbox" name="urgent" value="yes"> Urgent</label>
  <button type="button">Do nothing</button>
  <button type="submit">Send report</button>
</form></main></body></html>"#;

/// One field with no label: axe's `label` rule must flag it.
const UNLABELLED: &str = r#"<!doctype html><html lang="en"><head><title>Search</title></head>
<body><main><h1>Search</h1><form method="get" action="/echo">
<input id="q" name="q" type="text"> <button type="submit">Search</button>
</form></main></body></html>"#;

/// The twin, the same field labelled: axe finds nothing.
const LABELLED: &str = r#"<!doctype html><html lang="en"><head><title>Search</title></head>
<body><main><h1>Search</h1><form method="get" action="/echo">
<label for="q">Search term</label> <input id="q" name="q" type="text">
<button type="submit">Search</button>
</form></main></body></html>"#;

/// Says whether its script ran.
const SCRIPTED: &str = r#"<!doctype html><html lang="en"><head><title>Script</title></head>
<body><main><p id="out">script did not run</p>
<script>document.getElementById('out').textContent = 'script ran';</script></main></body></html>"#;

/// Serves the pages above over plain HTTP; see [`answer`].
async fn serve() -> SocketAddr {
    serve_with(None).await
}

/// Serves them over HTTPS with a certificate from a CA Chromium has never seen, as the
/// console's self-signed one is.
async fn serve_tls() -> SocketAddr {
    let ca = hedgerow_testkit::TestCa::new("harness test CA");
    serve_with(Some(tokio_rustls::TlsAcceptor::from(
        ca.server_config(&["127.0.0.1"]),
    )))
    .await
}

async fn serve_with(tls: Option<tokio_rustls::TlsAcceptor>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((conn, _)) = listener.accept().await else {
                return;
            };
            let tls = tls.clone();
            tokio::spawn(async move {
                match tls {
                    Some(acceptor) => {
                        if let Ok(conn) = acceptor.accept(conn).await {
                            answer(conn).await;
                        }
                    }
                    None => answer(conn).await,
                }
            });
        }
    });
    addr
}

/// One request: `/echo?…` shows the query it got, `/set` sets a cookie, `/cookies` shows the
/// Cookie header, the pages above by name, anything else is 404.
async fn answer(mut conn: impl AsyncRead + AsyncWrite + Unpin) {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match conn.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let target = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let cookie = head
        .lines()
        .find_map(|l| l.strip_prefix("Cookie: ").or(l.strip_prefix("cookie: ")))
        .unwrap_or("")
        .to_owned();
    let page = |title: &str, body: &str| {
        format!(
            "<!doctype html><html lang=\"en\"><head><title>{title}</title></head>\
             <body><main><h1>{title}</h1><p id=\"got\">{}</p></main></body></html>",
            body.replace('&', "&amp;").replace('<', "&lt;")
        )
    };
    let (status, extra, body) = match path {
        "/form" => ("200 OK", "", FORM.to_owned()),
        "/unlabelled" => ("200 OK", "", UNLABELLED.to_owned()),
        "/labelled" => ("200 OK", "", LABELLED.to_owned()),
        "/scripted" => ("200 OK", "", SCRIPTED.to_owned()),
        "/echo" => ("200 OK", "", page("Echo", query)),
        "/set" => (
            "200 OK",
            "Set-Cookie: who=first-browser; Path=/; HttpOnly\r\n",
            page("Set", "set"),
        ),
        "/cookies" => ("200 OK", "", page("Cookies", &format!("[{cookie}]"))),
        _ => ("404 Not Found", "", page("Not found", path)),
    };
    let reply = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\n{extra}\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = conn.write_all(reply.as_bytes()).await;
    let _ = conn.shutdown().await;
}

/// Fields found by their labels (for=, wrapping, a select, a checkbox) and the form sent
/// with the button named by its text: the server gets exactly what was typed. The other
/// button is not the one clicked (the form would not have been sent).
#[tokio::test(flavor = "multi_thread")]
async fn fills_a_form_by_its_labels_and_sends_it_with_the_named_button() {
    let addr = serve().await;
    let b = Browser::start("harness").await;
    b.goto(&format!("http://{addr}/form")).await;
    assert_eq!(b.title().await, "Form");
    // A browser in an English school.
    let lang = b.execute("return navigator.language;", vec![]).await;
    assert_eq!(lang, serde_json::json!("en-GB"));
    b.fill("Web address", "games.example").await;
    b.fill("Your note", "seen in Y7 <lesson>").await;
    b.select("Severity", "High").await;
    b.check("Urgent", true).await;
    b.click_button("Do nothing").await;
    assert!(
        b.url().await.ends_with("/form"),
        "a type=button sends nothing"
    );
    b.click_button("Send report").await;
    assert!(b.url().await.contains("/echo?"), "at {}", b.url().await);
    assert_eq!(
        b.text_of("#got").await,
        "site=games.example&note=seen+in+Y7+%3Clesson%3E&severity=High&urgent=yes"
    );
    assert!(b.text().await.contains("Echo"));
    b.close().await;
}

/// axe-core flags the unlabelled field by rule and element, and finds nothing on the same
/// page with the field labelled.
#[tokio::test(flavor = "multi_thread")]
async fn axe_flags_an_unlabelled_field_and_passes_its_labelled_twin() {
    let addr = serve().await;
    let b = Browser::start("harness").await;
    b.goto(&format!("http://{addr}/unlabelled")).await;
    let found = b.axe().await;
    assert!(
        found.iter().any(|v| v.id == "label" && v.targets == ["#q"]),
        "axe did not flag the unlabelled field: {found:?}"
    );
    b.goto(&format!("http://{addr}/labelled")).await;
    let found = b.axe().await;
    assert!(found.is_empty(), "the labelled twin: {found:?}");
    // The form page, with every kind of label, passes too.
    b.goto(&format!("http://{addr}/form")).await;
    let found = b.axe().await;
    assert!(found.is_empty(), "the form page: {found:?}");
}

/// With JavaScript off the page's script does not run (the twin, with it on, does), and the
/// form still works: filled by label, sent by its button.
#[tokio::test(flavor = "multi_thread")]
async fn javascript_off_runs_no_script_and_forms_still_work() {
    let addr = serve().await;
    let on = Browser::start("harness-js").await;
    on.goto(&format!("http://{addr}/scripted")).await;
    assert_eq!(on.text_of("#out").await, "script ran");

    let off = Browser::start_without_javascript("harness-nojs").await;
    assert!(!off.javascript());
    off.goto(&format!("http://{addr}/scripted")).await;
    assert_eq!(off.text_of("#out").await, "script did not run");
    off.goto(&format!("http://{addr}/form")).await;
    off.fill("Web address", "quiz.example").await;
    off.click_button("Send report").await;
    assert!(
        off.text_of("#got").await.starts_with("site=quiz.example&"),
        "{}",
        off.text().await
    );
}

/// Two browsers at once are two people: a cookie one is given is not sent by the other.
#[tokio::test(flavor = "multi_thread")]
async fn two_browsers_keep_their_own_cookies() {
    let addr = serve().await;
    let (first, second) = tokio::join!(
        Browser::start("harness-first"),
        Browser::start("harness-second")
    );
    first.goto(&format!("http://{addr}/set")).await;
    assert_eq!(first.cookie("who").await.as_deref(), Some("first-browser"));
    first.goto(&format!("http://{addr}/cookies")).await;
    assert_eq!(first.text_of("#got").await, "[who=first-browser]");
    second.goto(&format!("http://{addr}/cookies")).await;
    assert_eq!(second.text_of("#got").await, "[]");
    assert_eq!(second.cookie("who").await, None);
    // A cookie planted in the second (as an attacker would plant a session id) is sent.
    second.set_cookie("who", "planted").await;
    second.goto(&format!("http://{addr}/cookies")).await;
    assert_eq!(second.text_of("#got").await, "[who=planted]");
}

/// The status of each page loaded is the server's: 404 for a missing page, 200 for a page,
/// also after a form is sent and with JavaScript off; and fetch() from the page reports the
/// real status too.
#[tokio::test(flavor = "multi_thread")]
async fn status_and_fetch_report_the_real_status() {
    let addr = serve().await;
    let off = Browser::start_without_javascript("harness-nojs").await;
    assert_eq!(off.visit(&format!("http://{addr}/nowhere")).await, 404);
    assert_eq!(off.visit(&format!("http://{addr}/form")).await, 200);
    assert_eq!(off.status().await, 200, "asked again");
    off.click_button("Send report").await;
    assert_eq!(off.status().await, 200);
    off.goto(&format!("http://{addr}/also-nowhere")).await;
    assert_eq!(off.status().await, 404);

    let b = Browser::start("harness").await;
    b.goto(&format!("http://{addr}/form")).await;
    let missing = b.fetch(&format!("http://{addr}/nowhere")).await;
    assert_eq!(missing.status, 404);
    let found = b.fetch(&format!("http://{addr}/echo?x=1")).await;
    assert_eq!(found.status, 200);
    assert!(found.body.contains("x=1"));
}

/// A screenshot is a PNG of the window's width, in target/console-screenshots, named after
/// the test and the page.
#[tokio::test(flavor = "multi_thread")]
async fn screenshots_are_pngs_named_after_the_test_and_page() {
    let addr = serve().await;
    let b = Browser::start("harness").await;
    b.goto(&format!("http://{addr}/form")).await;
    let path = b.screenshot("form").await;
    assert!(
        path.ends_with("console-screenshots/harness-form.png"),
        "{path:?}"
    );
    let png = std::fs::read(&path).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    // IHDR: width and height, big-endian, at bytes 16..24.
    let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(png[20..24].try_into().unwrap());
    assert_eq!(width, 1280, "{path:?}");
    assert!(height >= 900, "{height}");
}

/// A page over HTTPS with a certificate from an unknown CA loads (the session accepts it, as
/// the console's self-signed certificate must be), and its form works.
#[tokio::test(flavor = "multi_thread")]
async fn loads_https_with_a_certificate_from_an_unknown_ca() {
    let addr = serve_tls().await;
    let b = Browser::start("harness-tls").await;
    b.goto(&format!("https://{addr}/form")).await;
    assert_eq!(b.title().await, "Form");
    b.fill("Web address", "tls.example").await;
    b.click_button("Send report").await;
    assert!(b.url().await.starts_with("https://"), "{}", b.url().await);
    assert!(b.text_of("#got").await.starts_with("site=tls.example&"));
}
