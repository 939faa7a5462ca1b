//! The workspace page in a real browser: Debian's headless `chromium` against `kizashi replay
//! --serve` (the real binary) on a generated population. The DOM chromium dumps after running the
//! page's JavaScript is checked for the queue's order, the heatmap's classes and values, sorting,
//! filtering and the account view; a screenshot of each page goes to
//! `$CARGO_TARGET_TMPDIR/page-screenshots/`. Without chromium the test fails, naming the install.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::http_get;
use common::served::Served;

use common::browser::{require_chromium, Browser, CHROMIUM};

/// Generates a population and starts `replay --serve` on it.
fn serve(accounts: usize) -> Served {
    serve_with(accounts, &[])
}

fn serve_with(accounts: usize, env: &[(&str, &str)]) -> Served {
    common::served::serve(accounts, env, None, |_| {})
}

/// Runs headless chromium with `args` on `url` (killed after 60 s); its stdout and stderr.
fn chromium(args: &[&str], url: &str) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let (out, err) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let mut child = Command::new(CHROMIUM)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000"])
        .arg(format!("--user-data-dir={}", dir.path().join("profile").display()))
        .args(args)
        .arg(url)
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .expect("start chromium");
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish in 60 s on {url}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    (std::fs::read_to_string(out).unwrap_or_default(), std::fs::read_to_string(err).unwrap_or_default())
}

/// The DOM after the page's scripts ran, with console errors checked: chromium logs every console
/// message and uncaught exception of the page to stderr as `…:CONSOLE…] "message", source: URL`;
/// the page logs nothing, so any such line from the page's origin fails the test.
fn dom(base: &str, hash: &str) -> String {
    let url = format!("{base}/{hash}");
    let (dom, stderr) = chromium(&["--enable-logging=stderr", "--v=0", "--dump-dom"], &url);
    let console: Vec<&str> = stderr
        .lines()
        .filter(|l| (l.contains(":CONSOLE") && l.contains(base)) || l.contains("Uncaught"))
        .collect();
    assert!(console.is_empty(), "console messages on {url}:\n{}", console.join("\n"));
    assert!(dom.contains("<tbody") || dom.contains("id=\"account\""), "no page rendered on {url}:\n{dom}");
    dom
}

fn screenshot(base: &str, hash: &str, file: &Path) {
    screenshot_at(base, hash, file, "1280,800");
}

/// A screenshot at `size` ("width,height").
fn screenshot_at(base: &str, hash: &str, file: &Path, size: &str) {
    let url = format!("{base}/{hash}");
    chromium(&[&format!("--screenshot={}", file.display()), &format!("--window-size={size}"), "--hide-scrollbars"], &url);
    let size = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
    assert!(size > 1000, "no screenshot of {url} at {}", file.display());
}

/// The text between `start` (after it) and the next `end`.
fn between<'a>(s: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let i = s.find(start)? + start.len();
    Some(&s[i..i + s[i..].find(end)?])
}

/// A cell's text with tags dropped and the few entities the DOM dump uses decoded.
fn text(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").trim().to_string()
}

#[derive(Debug)]
struct Row {
    id: String,
    score: Option<f64>,
    band: String,
    owner: String,
    arr: f64,
    /// The "Why" cell: the rule and the summary of its newest risk alert, or what loses it the most points.
    reason: String,
    /// (class, text) of every measure cell.
    cells: Vec<(String, String)>,
}

/// Whether `s` holds an ISO time with milliseconds ("…T10:00:00.000Z").
fn regex_like_millis(s: &str) -> bool {
    s.as_bytes().windows(6).any(|w| w[0] == b'.' && w[1..4].iter().all(u8::is_ascii_digit) && w[4] == b'Z')
}

/// A measure cell's number, as written: "62%", "14 d", "4.2 / 5" or a plain number.
fn numeric(v: &str) -> Option<f64> {
    v.trim_end_matches('%').trim_end_matches(" d").trim_end_matches(" / 5").replace(',', "").parse().ok()
}

/// The queue's rows as rendered.
fn rows(dom: &str) -> Vec<Row> {
    let body = between(dom, "<tbody>", "</tbody>").unwrap_or_else(|| panic!("no queue table in:\n{dom}"));
    body.split("<tr ")
        .skip(1)
        .map(|tr| {
            assert!(tr.contains("tabindex=\"0\""), "rows are focusable: {tr}");
            let cell = |class: &str| text(between(tr, &format!("<td class=\"{class}\">"), "</td>").unwrap_or(""));
            let cells = tr
                .split("<td class=\"m ")
                .skip(1)
                .map(|c| {
                    let class = c[..c.find('"').unwrap()].to_string();
                    let inner = &c[c.find('>').unwrap() + 1..c.find("</td>").unwrap()];
                    (class, text(inner))
                })
                .collect();
            Row {
                id: between(tr, "data-id=\"", "\"").unwrap().to_string(),
                score: cell("num score").parse().ok(),
                band: text(between(tr, "<td class=\"band ", "</td>").map(|s| &s[s.find('>').unwrap() + 1..]).unwrap_or("")),
                owner: cell("owner wide-only"),
                arr: cell("num arr").trim_start_matches('$').replace(',', "").parse().unwrap_or(0.0),
                reason: text(between(tr, "<td class=\"reason\"", "</td>").map(|s| &s[s.find('>').unwrap() + 1..]).unwrap_or("")),
                cells,
            }
        })
        .collect()
}

#[test]
fn the_page_shows_the_queue_the_heatmap_and_an_account_in_a_real_browser() {
    require_chromium();
    let started = Instant::now();
    let mut s = serve(120);
    s.wait_ready();
    let base = format!("http://{}", s.addr);
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("page-screenshots");
    std::fs::create_dir_all(&shots).unwrap();

    // The assets: served outside /v1 with their content types.
    for (path, kind) in [("/", "text/html"), ("/app.js", "text/javascript"), ("/style.css", "text/css")] {
        use std::io::{Read, Write};
        let mut c = std::net::TcpStream::connect(&s.addr).unwrap();
        write!(c, "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", s.addr).unwrap();
        let mut raw = String::new();
        c.read_to_string(&mut raw).unwrap();
        let head = raw.split("\r\n\r\n").next().unwrap().to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 200"), "{path}: {head}");
        assert!(head.contains(&format!("content-type: {kind}")), "{path}: {head}");
        // Its own scripts and styles only (the DOM dumps below fail on any console message, a
        // refused inline script or style among them).
        assert!(head.contains(&format!("content-security-policy: {}", kizashi::api::guard::CONTENT_SECURITY_POLICY)), "{path}: {head}");
    }

    // The default view is today's: what is at stake and how soon first, each row saying why.
    let today = rows(&dom(&base, ""));
    assert!(today.len() >= 20, "a page of today's queue renders: {} rows", today.len());
    assert!(today[..5].iter().all(|r| r.band == "red" || r.band == "yellow"), "at risk first: {:?}", &today[..5]);
    assert!(today[..10].iter().all(|r| r.reason.len() > 20 && r.reason != "—"), "each says why: {:?}", &today[..10]);
    screenshot(&base, "", &shots.join("today.png"));
    screenshot_at(&base, "", &shots.join("today-phone.png"), "390,844");
    // The touch-tier filter: the page shows what the API gives for the tier, and fewer accounts.
    for tier in ["high", "tech"] {
        let shown: Vec<String> = rows(&dom(&base, &format!("#tier={tier}"))).into_iter().map(|r| r.id).collect();
        let (_, api) = common::get_json(&s.addr, &format!("/v1/accounts?sort=today&tier={tier}&limit=50"), None);
        let want: Vec<String> = api["accounts"].as_array().unwrap().iter().map(|r| r["account_id"].as_str().unwrap().to_string()).collect();
        assert!(!want.is_empty() && api["total"].as_u64().unwrap() < 120, "{tier}: some accounts, not all: {}", api["total"]);
        assert!(api["accounts"].as_array().unwrap().iter().all(|r| r["tier"] == tier), "{tier}");
        assert_eq!(shown, want, "{tier}-touch accounts on the page as the API lists them");
    }

    // The queue in risk order: scores non-decreasing.
    let page = dom(&base, "#sort=risk");
    assert!(page.contains("id=\"strip\"") && page.contains("alerts by rule"), "the portfolio strip renders");
    let risk = rows(&page);
    assert!(risk.len() >= 20, "a page of the queue renders: {} rows", risk.len());
    // The rule filter offers every rule the server knows (built from /v1/summary's list).
    for rule in kizashi::core::alerts::Rule::ALL {
        assert!(page.contains(&format!("<option value=\"{}\">", rule.name())), "the rule filter offers {}", rule.name());
    }
    // A link to a rule is taken as it is: a known one filters, an unknown one is the server's
    // error, never all accounts in silence.
    let renewal = dom(&base, "#rule=renewal_at_risk");
    assert!(!renewal.contains("<caption class=\"error\""), "a link to renewal_at_risk is a queue");
    let bogus = dom(&base, "#rule=bogus");
    assert!(bogus.contains("<caption class=\"error\"") && bogus.contains("is not a rule"), "an unknown rule is named, not dropped");
    let scores: Vec<f64> = risk.iter().map(|r| r.score.unwrap_or_else(|| panic!("a scored row: {r:?}"))).collect();
    assert!(scores.windows(2).all(|w| w[0] <= w[1]), "risk order (scores non-decreasing): {scores:?}");

    // The heatmap: some red cells, each with its value written; "no data" as text.
    let red: Vec<&(String, String)> = risk.iter().flat_map(|r| &r.cells).filter(|(c, _)| c == "m-red").collect();
    assert!(!red.is_empty(), "at least one m-red cell");
    for (_, v) in &red {
        assert!(numeric(v).is_some(), "an m-red cell holds its value as a number: `{v}`");
    }
    // Readable: ratios as percentages (weekly seat utilisation is on every default scorecard).
    assert!(risk.iter().flat_map(|r| &r.cells).any(|(_, v)| v.ends_with('%')), "percentages in the heatmap");
    for (class, v) in risk.iter().flat_map(|r| &r.cells) {
        assert!(["m-red", "m-yellow", "m-green", "m-nodata"].contains(&class.as_str()), "{class}");
        assert!(!v.is_empty(), "every measure cell has text ({class})");
        if class != "m-nodata" {
            assert!(numeric(v).is_some(), "a {class} cell holds its value: `{v}`");
        }
    }
    screenshot(&base, "#sort=risk", &shots.join("queue.png"));

    // Sorting by ARR at risk reorders the rows: red and yellow only, the most ARR first.
    let by_arr = rows(&dom(&base, "#sort=arr_at_risk"));
    assert!(!by_arr.is_empty());
    let ids = |rs: &[Row]| rs.iter().map(|r| r.id.clone()).collect::<Vec<_>>();
    assert_ne!(ids(&by_arr), ids(&risk), "sort=arr_at_risk changes the order");
    assert!(by_arr.iter().all(|r| r.band == "red" || r.band == "yellow"), "{by_arr:?}");
    let arrs: Vec<f64> = by_arr.iter().map(|r| r.arr).collect();
    assert!(arrs.windows(2).all(|w| w[0] >= w[1]), "the most ARR first: {arrs:?}");

    // The owner filter narrows the rows to that owner's accounts.
    let owner = risk[0].owner.clone();
    assert!(!owner.is_empty() && owner != "—", "generated accounts have owners");
    let mine = rows(&dom(&base, &format!("#owner={}", owner.replace(' ', "%20"))));
    assert!(!mine.is_empty() && mine.len() < risk.len(), "the owner filter narrows {} rows to {}", risk.len(), mine.len());
    assert!(mine.iter().all(|r| r.owner == owner), "only {owner}'s accounts: {mine:?}");
    // The strip is scoped to the filter: its accounts add up to the owner's queue (a page holds
    // them all here), and it says so.
    let mine_dom = dom(&base, &format!("#owner={}&limit=100", owner.replace(' ', "%20")));
    let strip = between(&mine_dom, "id=\"strip\"", "</section>").expect("the strip");
    let counted: usize = strip.split("<div class=\"n\">").skip(1).map(|c| text(&c[..c.find("<span").unwrap()]).replace(',', "").parse::<usize>().unwrap()).sum();
    assert_eq!(counted, rows(&mine_dom).len(), "the strip counts {owner}'s accounts");
    assert!(strip.contains("Showing the accounts of the filter"), "{strip}");
    // Every owner is offered, not only those of the page shown: the datalist holds as many as
    // the server's summary names.
    let (_, summary) = http_get(&s.addr, "/v1/summary", None).unwrap();
    let summary: serde_json::Value = serde_json::from_str(&summary).unwrap();
    let owners = summary["owners"].as_array().unwrap().len();
    assert!(owners >= 2, "{summary}");
    let datalist = between(&page, "<datalist id=\"owners\">", "</datalist>").unwrap_or("");
    assert_eq!(datalist.matches("<option").count(), owners, "every owner offered: {datalist}");
    // The CSV button downloads what the queue shows (its filters, as CSV).
    let csv_query = between(&mine_dom, "id=\"csv\" data-query=\"", "\"").unwrap_or_else(|| panic!("no CSV query in {mine_dom}"));
    assert!(csv_query.contains("owner=") && csv_query.contains("format=csv"), "the CSV button's query: {csv_query}");

    // A red account's page: facts, score, explanation bars, and the history chart with its alert
    // markers (a red account has had at least its `entered_red` alert within the 90 days).
    let red_account = risk.iter().find(|r| r.band == "red").expect("a red account");
    let hash = format!("#/account/{}", red_account.id);
    let account = dom(&base, &hash);
    let view = &account[account.find("id=\"account\"").unwrap()..];
    assert!(view.contains(&red_account.id) && view.contains("red"), "the account view shows the account:\n{view}");
    assert!(view.contains("class=\"bars\""), "the explanation as bars");
    let chart = view.contains("<svg") && view.contains("class=\"alert-marker\"") && view.contains("<title>");
    assert!(chart, "the history chart with alert markers:\n{view}");
    assert!(!view.contains(">no history yet<"), "{view}");
    assert!(view.contains("class=\"alert-summary\""), "recent alerts with their summaries:\n{view}");
    assert!(view.contains("Open tickets"), "the open tickets panel");
    assert!(view.contains("class=\"people\"") || view.contains("no active users in the last 28 days"), "the people panel:\n{view}");
    // What keeps it from 100, always; dates and times as people read them.
    assert!(view.contains("What keeps the score from 100") && view.contains("class=\"bars shortfall\""), "the shortfall panel");
    let shown = text(view);
    assert!(!regex_like_millis(&shown), "no millisecond timestamps: {shown}");
    assert!(shown.contains(" UTC"), "times as people read them: {shown}");
    screenshot(&base, &hash, &shots.join("account.png"));

    // Hand-made copies (docs/screenshots) come from the same run when asked for.
    if let Some(dir) = std::env::var_os("KIZASHI_PAGE_SCREENSHOTS") {
        for f in ["today.png", "today-phone.png", "queue.png", "account.png"] {
            std::fs::copy(shots.join(f), Path::new(&dir).join(f)).unwrap();
        }
    }
    eprintln!("page test: screenshots in {}; {:.1} s", shots.display(), started.elapsed().as_secs_f64());
}

/// A link whose account id does not decode (`%E0%A4%A`) shows a message and the way back, with
/// no uncaught exception (it used to throw in `decodeURIComponent` and leave the page blank).
#[test]
fn a_malformed_account_link_shows_a_message_instead_of_a_blank_page() {
    require_chromium();
    let mut s = serve(20);
    s.wait_ready();
    let base = format!("http://{}", s.addr);
    let page = dom(&base, "#/account/%E0%A4%A");
    let message = between(&page, "id=\"badlink\">", "</p>").unwrap_or_else(|| panic!("no message for the malformed link:\n{page}"));
    assert!(message.contains("does not name an account"), "{message}");
    let view = between(&page, "<section id=\"account\"", "</section>").unwrap();
    assert!(!view.starts_with(" aria-label=\"Account\" hidden"), "the account view, with the message, is shown: {view}");
    assert!(view.contains("Back to the queue"), "{view}");
    assert!(page.contains("alerts by rule"), "the rest of the page still renders");
    // A well-formed link still opens its account.
    let ok = dom(&base, "#/account/acct-00000");
    assert!(!ok.contains("id=\"badlink\"") && ok.contains("acct-00000"), "{ok}");
}

/// With `http.token` set the page holds nothing without it: it asks for the token, shows no
/// account, and the API it would call refuses it without the token.
#[test]
fn with_a_token_the_page_asks_for_it_and_shows_nothing_before() {
    require_chromium();
    let mut s = serve_with(30, &[("KIZASHI__HTTP__TOKEN", "s3cret-token")]);
    let base = format!("http://{}", s.addr);
    s.wait_ready();
    let page = dom(&base, "");
    let login = between(&page, "<form id=\"login\"", "</form>").expect("the token form");
    assert!(!login.starts_with(" hidden"), "the form is shown: {login}");
    assert!(login.contains("type=\"password\"") || login.contains("id=\"token\""), "{login}");
    assert!(!page.contains("acct-000"), "no account data without the token");
    let (st, _) = common::http_get(&s.addr, "/v1/accounts", None).unwrap();
    assert_eq!(st, 401);
    let (st, _) = common::http_get(&s.addr, "/", None).unwrap();
    assert_eq!(st, 200, "the page itself needs no token");
}

/// The whole round trip: the page asks for the token, a wrong one is refused with a message, the
/// right one shows the queue (so the API calls carried it: the API refuses them without it), and
/// a reload does not ask again (the token is kept for the tab).
#[test]
fn with_a_token_the_page_takes_it_once_and_sends_it_on_every_call() {
    require_chromium();
    let mut s = serve_with(30, &[("KIZASHI__HTTP__TOKEN", "s3cret-token")]);
    let base = format!("http://{}", s.addr);
    s.wait_ready();
    let mut b = Browser::start();
    b.navigate(&format!("{base}/"));
    let login_shown =
        "!document.getElementById('login').hidden && document.getElementById('app').hidden";
    b.wait_for(login_shown, "the page asks for the token");
    assert_eq!(
        b.eval("document.querySelectorAll('#table tbody tr').length"),
        0,
        "no rows before the token"
    );
    let submit = |b: &mut Browser, token: &str| {
        b.eval(&format!(
            "document.getElementById('token').value = {}; document.getElementById('login').requestSubmit(); true",
            serde_json::Value::from(token)
        ));
    };

    submit(&mut b, "wrong-token");
    b.wait_for(
        &format!("{login_shown} && !document.getElementById('login-error').hidden"),
        "a refused token asks again, saying so",
    );
    let err = b.eval("document.getElementById('login-error').textContent");
    assert!(err.as_str().unwrap().contains("refused"), "{err}");
    assert_eq!(
        b.eval("document.querySelectorAll('#table tbody tr').length"),
        0,
        "no rows with a wrong token"
    );

    submit(&mut b, "s3cret-token");
    let queue_shown = "document.getElementById('login').hidden && \
        [...document.querySelectorAll('#table tbody tr')].some(tr => (tr.dataset.id || '').startsWith('acct-'))";
    b.wait_for(queue_shown, "the right token shows the queue");
    b.wait_for(
        "/\\d/.test(document.getElementById('strip').innerText)",
        "the portfolio strip is filled",
    );

    // An account view is one more set of API calls with the token.
    let id = b
        .eval("document.querySelector('#table tbody tr').dataset.id")
        .as_str()
        .unwrap()
        .to_string();
    b.navigate(&format!("{base}/#/account/{id}"));
    b.wait_for(
        &format!("!document.getElementById('account').hidden && document.getElementById('account').innerText.includes({})", serde_json::Value::from(id.as_str())),
        "the account view renders with the token",
    );

    // Asked once: a reload of the tab keeps the token and goes straight to the queue.
    b.call("Page.reload", serde_json::json!({}));
    std::thread::sleep(Duration::from_millis(300));
    b.navigate(&format!("{base}/#/"));
    b.wait_for(
        queue_shown,
        "after a reload the queue shows without asking again",
    );
    assert_eq!(b.eval("document.getElementById('login').hidden"), true);
    assert!(
        b.exceptions.is_empty(),
        "uncaught exceptions on the page: {:?}",
        b.exceptions
    );
    // And the token really is needed: the same API call without it is refused.
    assert_eq!(http_get(&s.addr, "/v1/accounts", None).unwrap().0, 401);
    assert_eq!(
        http_get(&s.addr, "/v1/accounts", Some("s3cret-token"))
            .unwrap()
            .0,
        200
    );
}

/// Keyboard and phone width, in the browser: Tab reaches the queue's rows, Enter on a row opens
/// its account, and at 390 px wide the page does not overflow sideways (the heatmap scrolls in
/// its own box).
#[test]
fn the_page_works_by_keyboard_and_at_phone_width() {
    require_chromium();
    let mut s = serve(40);
    let base = format!("http://{}", s.addr);
    s.wait_ready();
    let mut b = Browser::start();
    let rows_shown = "[...document.querySelectorAll('#table tbody tr')].some(tr => (tr.dataset.id || '').startsWith('acct-'))";
    for width in [1280, 390] {
        b.call(
            "Emulation.setDeviceMetricsOverride",
            serde_json::json!({"width": width, "height": 800, "deviceScaleFactor": 1, "mobile": width < 700}),
        );
        b.navigate(&format!("{base}/#/"));
        b.wait_for(rows_shown, "the queue renders");
        let overflow =
            b.eval("document.documentElement.scrollWidth - document.documentElement.clientWidth");
        assert!(
            overflow.as_i64().unwrap() <= 0,
            "at {width} px the page is {overflow} px too wide"
        );
        let table_box = b.eval("document.querySelector('.scroll').getBoundingClientRect().right <= document.documentElement.clientWidth + 1");
        assert_eq!(
            table_box, true,
            "at {width} px the heatmap's box fits the screen"
        );
        // Score, band and ARR of the first row are on the screen without scrolling sideways.
        let in_view = b.eval("['num score', 'band', 'num arr'].every(c => { const td = document.querySelector('#table tbody tr td[class^=\"' + c + '\"]'); return td && td.getBoundingClientRect().right <= document.documentElement.clientWidth; })");
        assert_eq!(in_view, true, "at {width} px score, band and ARR are in view");
    }
    // (clientWidth is the screen's width; a mobile browser widens innerWidth to fit the content.)
    // Tab from the top until a queue row has the focus (bounded), then Enter opens that account.
    let mut focused = String::new();
    for _ in 0..200 {
        b.call("Input.dispatchKeyEvent", serde_json::json!({"type": "keyDown", "key": "Tab", "code": "Tab", "windowsVirtualKeyCode": 9}));
        b.call("Input.dispatchKeyEvent", serde_json::json!({"type": "keyUp", "key": "Tab", "code": "Tab", "windowsVirtualKeyCode": 9}));
        let id = b.eval(
            "(document.activeElement.closest('#table tbody tr') || {dataset: {}}).dataset.id || ''",
        );
        if !id.as_str().unwrap().is_empty() {
            focused = id.as_str().unwrap().to_string();
            break;
        }
    }
    assert!(
        focused.starts_with("acct-"),
        "Tab never reached a queue row"
    );
    let enter = |t: &str| serde_json::json!({"type": t, "key": "Enter", "code": "Enter", "windowsVirtualKeyCode": 13});
    b.call("Input.dispatchKeyEvent", enter("keyDown"));
    b.call("Input.dispatchKeyEvent", enter("keyUp"));
    b.wait_for(
        &format!("location.hash === '#/account/' + encodeURIComponent({0}) && !document.getElementById('account').hidden && document.getElementById('account').innerText.includes({0})", serde_json::Value::from(focused.as_str())),
        "Enter on the focused row opens its account",
    );
    assert!(
        b.exceptions.is_empty(),
        "uncaught exceptions on the page: {:?}",
        b.exceptions
    );
}
