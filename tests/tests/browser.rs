//! The admin dashboard in a real headless Chromium, driven over WebDriver
//! (chromedriver) from Rust: a wrong password is refused, the right one logs
//! in, an activity is created through the form, a sale made through the API
//! shows on the page without a reload, the activity page opened afresh charts
//! the recent past, a blacklist entry added in the page is live in the API and
//! shows when it reached the edge, a dead letter is refunded from its page,
//! and the checklist shows real probed statuses. Every page is saved as a screenshot under
//! `target/test-artifacts/browser/`.
//!
//! Needs the built UI (`target/admin-ui/`), `chromium` and `chromedriver`:
//! `cargo xtask test` provides all three.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use seckill_tests::{ADMIN_PASSWORD, Backend, EDGE_SECRET, RedisServer, TempDir, eventually, free_port};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// How long the page gets for anything (the wasm loads in well under a second).
const DEADLINE: Duration = Duration::from_secs(20);

fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target")
}

fn artifacts_dir() -> PathBuf {
    let dir = target_dir().join("test-artifacts/browser");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A private chromedriver on a free port, killed (with the Chromium it started) on drop.
struct ChromeDriver {
    port: u16,
    child: Child,
    profile: TempDir,
}

impl ChromeDriver {
    async fn start() -> Self {
        use std::os::unix::process::CommandExt as _;
        let port = free_port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            // The page shows and reads local times: make them UTC, whatever the host says.
            .env("TZ", "UTC")
            // Its own process group, so that drop ends Chromium too, even after a failed test.
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start chromedriver ({e}): run `cargo xtask test`, which installs it"));
        let driver = Self { port, child, profile: TempDir::new("chromium-profile") };
        let http = reqwest::Client::new();
        let status = format!("{}/status", driver.url());
        eventually(Duration::from_secs(15), "chromedriver to answer /status", || {
            let (http, status) = (&http, &status);
            async move {
                let res = http.get(status).send().await.ok()?;
                let body: Value = res.json().await.ok()?;
                (body["value"]["ready"] == true).then_some(())
            }
        })
        .await;
        driver
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    async fn session(&self) -> Client {
        let chromium = ["/usr/bin/chromium", "/usr/lib/chromium/chromium"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("chromium is not installed: run `cargo xtask test`, which installs it");
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--window-size=1280,900",
                    format!("--user-data-dir={}", self.profile.0.display()),
                ],
            },
        });
        let Value::Object(caps) = caps else { unreachable!() };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        ClientBuilder::new(connector).capabilities(caps).connect(&self.url()).await.expect("a WebDriver session")
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        // The whole group: chromedriver and the browser processes it started.
        let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", self.child.id())]).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The text of every element matching `css` (one round trip; nothing goes stale).
async fn texts(c: &Client, css: &str) -> Vec<String> {
    let script = "return Array.from(document.querySelectorAll(arguments[0])).map(e => e.textContent.trim());";
    match c.execute(script, vec![json!(css)]).await {
        Ok(Value::Array(items)) => items.into_iter().filter_map(|v| v.as_str().map(str::to_owned)).collect(),
        _ => Vec::new(),
    }
}

/// Waits until an element matching `css` contains `needle`; returns its text.
async fn wait_text(c: &Client, css: &str, needle: &str) -> String {
    eventually(DEADLINE, &format!("`{needle}` in `{css}`"), || async {
        texts(c, css).await.into_iter().find(|t| t.contains(needle))
    })
    .await
}

async fn wait_element(c: &Client, css: &str) -> fantoccini::elements::Element {
    eventually(DEADLINE, &format!("an element `{css}`"), || async { c.find(Locator::Css(css)).await.ok() }).await
}

async fn click(c: &Client, css: &str) {
    wait_element(c, css).await.click().await.unwrap_or_else(|e| panic!("clicking `{css}`: {e}"));
}

async fn type_into(c: &Client, css: &str, text: &str) {
    let input = wait_element(c, css).await;
    input.clear().await.unwrap();
    input.send_keys(text).await.unwrap_or_else(|e| panic!("typing into `{css}`: {e}"));
}

/// Sets an input's value as typing would (for `datetime-local`, whose keyboard
/// entry depends on the locale) and lets the page see the input event.
async fn set_value(c: &Client, css: &str, value: &str) {
    wait_element(c, css).await;
    let script = "const el = document.querySelector(arguments[0]); el.value = arguments[1];
        el.dispatchEvent(new Event('input', { bubbles: true }));";
    c.execute(script, vec![json!(css), json!(value)]).await.unwrap();
}

async fn hash(c: &Client) -> String {
    c.current_url().await.unwrap().fragment().unwrap_or_default().to_owned()
}

/// Saves the viewport as `target/test-artifacts/browser/<name>.png`.
async fn screenshot(c: &Client, name: &str) {
    let png = c.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    std::fs::write(artifacts_dir().join(format!("{name}.png")), png).unwrap();
}

/// How many points the chart line of class `line` has drawn.
async fn chart_points(c: &Client, line: &str) -> u64 {
    let script = "const d = document.querySelector('path.line.' + arguments[0])?.getAttribute('d') || '';
        return d ? d.split('L').length : 0;";
    c.execute(script, vec![json!(line)]).await.ok().and_then(|v| v.as_u64()).unwrap_or(0)
}

/// `2026-11-11T20:00`, UTC (the browser runs with TZ=UTC).
fn datetime_local(t: OffsetDateTime) -> String {
    format!("{:04}-{:02}-{:02}T{:02}:{:02}", t.year(), u8::from(t.month()), t.day(), t.hour(), t.minute())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_works_in_a_real_browser() {
    let ui_dir = target_dir().join("admin-ui");
    assert!(
        ui_dir.join("index.html").is_file(),
        "the admin UI is not built ({} is missing): run `cargo xtask test`, which builds it and installs chromium",
        ui_dir.join("index.html").display()
    );
    let ui_dir = ui_dir.canonicalize().unwrap().display().to_string();
    let redis = RedisServer::start().unwrap();
    let backend = Backend::start_with(&redis.url(), &["--admin-ui-dir", &ui_dir]).await.unwrap();
    let admin = backend.admin_token().await;

    // Before the wasm arrives, the page is a loading state, not a blank page.
    let index = backend.http.get(backend.url("/admin/")).send().await.unwrap().text().await.unwrap();
    assert!(index.contains(r#"id="boot""#) && index.contains("加载中… / Loading…"), "no loading state in index.html");

    let driver = ChromeDriver::start().await;
    let c = driver.session().await;
    let base = backend.url("/admin/");
    c.goto(&base).await.unwrap();

    // The login page, Chinese first; then English.
    wait_element(&c, "form.login input[name=password]").await;
    assert!(c.find(Locator::Css("#boot")).await.is_err(), "the loading state is gone once the app runs");
    screenshot(&c, "login").await;
    click(&c, "form.login .lang-switch button:nth-child(2)").await;
    wait_text(&c, "form.login button[type=submit]", "Log").await;

    // A wrong password is refused, and the page stays on the login form.
    type_into(&c, "form.login input[name=password]", "not-the-password").await;
    click(&c, "form.login button[type=submit]").await;
    wait_text(&c, "form.login .field-error", "Wrong password").await;
    assert!(c.find(Locator::Css("header.topbar")).await.is_err(), "a wrong password must not log in");
    screenshot(&c, "login-refused").await;

    // The right one logs in.
    type_into(&c, "form.login input[name=password]", ADMIN_PASSWORD).await;
    click(&c, "form.login button[type=submit]").await;
    wait_element(&c, "header.topbar").await;
    // A marker that a reload would wipe: the sale must show without one.
    c.execute("window.__noReload = 'still here';", vec![]).await.unwrap();

    // Create an activity through the form: live from the last minute, for an hour.
    click(&c, r##"a.btn.primary[href="#/activities/new"]"##).await;
    let name = "Browser test phone";
    let now = OffsetDateTime::now_utc();
    type_into(&c, "form.form input[name=name]", name).await;
    type_into(&c, "form.form input[name=price_cents]", "19.99").await;
    type_into(&c, "form.form input[name=total_stock]", "10").await;
    type_into(&c, "form.form input[name=limit_per_user]", "2").await;
    set_value(&c, "form.form input[name=starts_at]", &datetime_local(now - time::Duration::minutes(1))).await;
    set_value(&c, "form.form input[name=ends_at]", &datetime_local(now + time::Duration::hours(1))).await;
    screenshot(&c, "activity-form").await;
    click(&c, "form.form button[type=submit]").await;
    let id: u64 = eventually(DEADLINE, "the new activity's page", || async {
        hash(&c).await.strip_prefix("/activities/").and_then(|id| id.parse().ok())
    })
    .await;
    let (status, created) = backend.get(&format!("/admin/api/activities/{id}"), &admin).await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(
        (created["name"].as_str(), created["price_cents"].as_i64(), created["total_stock"].as_i64()),
        (Some(name), Some(1999), Some(10))
    );
    assert_eq!(created["limit_per_user"], 2);
    // Its page, once the event stream has spoken about it.
    wait_text(&c, "main.page .kpi-label", "Purchases").await;
    screenshot(&c, "activity").await;

    // Listed, with its live figures from the event stream.
    click(&c, r##"header.topbar nav a[href="#/activities"]"##).await;
    wait_text(&c, "article.activity .activity-name", name).await;
    let sold_on_page = || async {
        let script = "const card = Array.from(document.querySelectorAll('article.activity'))
                .find(a => a.querySelector('.activity-name')?.textContent.trim() === arguments[0]);
            const kpi = card && Array.from(card.querySelectorAll('.kpi'))
                .find(k => k.querySelector('.kpi-label')?.textContent.trim() === 'Sold');
            return kpi ? kpi.querySelector('.kpi-value').textContent.trim() : null;";
        c.execute(script, vec![json!(name)]).await.ok().and_then(|v| v.as_str().map(str::to_owned))
    };
    // The live figures (tokens are only in the stream's view) before the sale.
    wait_text(&c, "article.activity .kpi-label", "Tokens").await;
    assert_eq!(sold_on_page().await.as_deref(), Some("0"));

    // A sale through the API shows on the page without a reload.
    backend.buy(id, "browser-buyer", 2).await;
    eventually(DEADLINE, "the page to show 2 sold", || async {
        (sold_on_page().await.as_deref() == Some("2")).then_some(())
    })
    .await;
    let marker = c.execute("return window.__noReload ?? null;", vec![]).await.unwrap();
    assert_eq!(marker, json!("still here"), "the page was reloaded");
    screenshot(&c, "activities").await;

    // The order, in the orders page.
    click(&c, r##"header.topbar nav a[href="#/orders"]"##).await;
    wait_text(&c, "table td", "browser-buyer").await;
    // Below them, the payments a provider took that must go back: none here.
    wait_text(&c, ".refunds-card", "No payment to refund").await;
    screenshot(&c, "orders").await;

    // Opened afresh, the activity page charts the recent past at once (the
    // backend's series): once the series covers several seconds, the rates
    // line has those seconds before the stream's points, while the sales line
    // has only the second of the sale (both get the stream's points alike).
    let series_path = format!("/admin/api/activities/{id}/series");
    eventually(DEADLINE, "the backend's series to cover 8 seconds", || async {
        let (_, series) = backend.get(&series_path, &admin).await;
        let at = |k: &str| OffsetDateTime::parse(series[k].as_str()?, &Rfc3339).ok();
        (at("until")? - at("since")? >= time::Duration::seconds(8)).then_some(())
    })
    .await;
    c.goto(&format!("{base}#/activities/{id}")).await.unwrap();
    c.refresh().await.unwrap();
    wait_text(&c, "main.page .kpi-label", "Purchases").await;
    eventually(DEADLINE, "the rates chart to start with the past", || async {
        (chart_points(&c, "purchases").await >= chart_points(&c, "sold").await + 6).then_some(())
    })
    .await;
    screenshot(&c, "activity-history").await;

    // Its pre-flight and reconciliation pages: each a verdict from the backend.
    c.goto(&format!("{base}#/activities/{id}/preflight")).await.unwrap();
    wait_text(&c, "main.page h1", "Pre-flight check").await;
    // No edge syncs in this test, so the verdict may be either; it must be one.
    let verdict = wait_text(&c, "main.page .verdict h2", "").await;
    assert!(["Ready to go live", "Not ready"].contains(&verdict.trim()), "{verdict}");
    screenshot(&c, "preflight").await;
    c.goto(&format!("{base}#/activities/{id}/reconciliation")).await.unwrap();
    wait_text(&c, "main.page h1", "Reconciliation").await;
    wait_text(&c, "main.page table th", "Redis remaining").await;
    screenshot(&c, "reconciliation").await;

    // A sale whose order event had to be dead-lettered (its unit counted as sold, its event
    // buried with the reason), settled from the dead letters page with a refund.
    let mut r = redis.conn().await;
    let entry_id = format!("{}-0", OffsetDateTime::now_utc().unix_timestamp() * 1000);
    let () = redis::pipe()
        .atomic()
        .cmd("DECRBY")
        .arg(seckill_backend::store::keys::inventory(id))
        .arg(1)
        .ignore()
        .cmd("INCRBY")
        .arg(seckill_backend::store::keys::sold(id))
        .arg(1)
        .ignore()
        .cmd("XADD")
        .arg(seckill_backend::store::keys::dead_letters(id))
        .arg("*")
        .arg(&[
            ("activity_id", id.to_string()),
            ("user_id", "browser-lost".into()),
            ("quantity", "1".into()),
            ("amount_cents", "1999".into()),
            ("created_at_ms", "1764083707629".into()),
            ("pay_deadline_ms", "1764084607629".into()),
            ("dead_reason", "database refused the row 5 times: (since fixed)".into()),
            ("dead_entry_id", entry_id.clone()),
        ])
        .ignore()
        .query_async(&mut r)
        .await
        .unwrap();
    let lost_order = format!("{id}-{entry_id}");
    c.goto(&format!("{base}#/activities/{id}/reconciliation")).await.unwrap();
    click(&c, r##"main.page a[href="#/dead-letters"]"##).await;
    wait_text(&c, "main.page h1", "Dead letters").await;
    wait_text(&c, "table[data-test=dead-letters] td", "since fixed").await;
    screenshot(&c, "dead-letters").await;
    click(&c, &format!(r#"tr[data-order="{lost_order}"] button[data-action=refund]"#)).await;
    wait_text(&c, "[data-test=dead-done]", &lost_order).await;
    wait_text(&c, "main.page .pad p", "No dead letters").await;
    let (_, left) = backend.get("/admin/api/dead-letters", &admin).await;
    assert_eq!(left["items"], json!([]), "the refunded dead letter is settled");
    let (_, activity) = backend.get(&format!("/admin/api/activities/{id}"), &admin).await;
    assert_eq!((activity["sold"].as_i64(), activity["remaining"].as_i64()), (Some(2), Some(8)), "{activity}");

    // The edge rules page (no edge has synced in this test): the rules in
    // force are the built-in defaults, never saved.
    click(&c, r##"header.topbar nav a[href="#/edge"]"##).await;
    wait_text(&c, "main.page h1", "Edge rules").await;
    let current = wait_text(&c, "main.page p.lead", "Version 0").await;
    assert!(current.contains("the built-in defaults, never saved") && !current.contains("1970"), "{current}");
    // Degraded mode, switched on with a reason and off again from the page.
    wait_text(&c, "#degraded-status", "Off").await;
    type_into(&c, r#".degraded-card input[name="reason"]"#, "redis CPU at 95%").await;
    click(&c, ".degraded-card button.danger").await;
    wait_text(&c, "#degraded-status", "redis CPU at 95%").await;
    assert_eq!(backend.get("/admin/api/degraded", &admin).await.1["degraded"], true);
    screenshot(&c, "edge").await;
    click(&c, ".degraded-card button.primary").await;
    wait_text(&c, "#degraded-status", "Off").await;
    assert_eq!(backend.get("/admin/api/degraded", &admin).await.1["degraded"], false);

    // A blacklist entry added in the page is in force through the API.
    let user_path = "/admin/api/blacklist/users/browser-cheat";
    assert_eq!(backend.get(user_path, &admin).await.0, 404, "not blacklisted yet");
    click(&c, r##"header.topbar nav a[href="#/blacklist"]"##).await;
    let users_panel = ".grid2 > section.card:nth-child(1)";
    type_into(&c, &format!("{users_panel} form.inline-form input[type=text]"), "browser-cheat").await;
    click(&c, &format!("{users_panel} form.inline-form button[type=submit]")).await;
    wait_text(&c, &format!("{users_panel} ul.entries li .mono"), "browser-cheat").await;
    let (status, entry) = backend.get(user_path, &admin).await;
    assert_eq!(status, 200, "the entry added in the page is not in the API: {entry}");
    // No edge has it yet; once one has applied a state holding it (its next sync
    // names that state's version), the page says when it got there.
    let entry_line = format!("{users_panel} ul.entries li");
    wait_text(&c, &entry_line, "waiting for the edge").await;
    let sync = |applied: Option<String>| {
        let mut req = backend
            .http
            .get(backend.url("/internal/edge/state"))
            .header("x-seckill-edge-secret", EDGE_SECRET)
            .header("x-seckill-edge-id", "browser-edge");
        if let Some(etag) = applied {
            req = req.header("if-none-match", etag);
        }
        req.send()
    };
    let first = sync(None).await.unwrap();
    assert_eq!(first.status(), 200);
    let etag = first.headers()["etag"].to_str().unwrap().to_owned();
    assert_eq!(sync(Some(etag)).await.unwrap().status(), 304);
    let line = wait_text(&c, &entry_line, "reached the edge at").await;
    assert!(line.contains("browser-cheat"), "{line}");
    screenshot(&c, "blacklist").await;

    // The checklist is the seed's, and shows what the backend really probed: its own pool.
    click(&c, r##"header.topbar nav a[href="#/checklist"]"##).await;
    let item = wait_text(&c, "li.check-item", "code.connection_pools").await;
    assert!(item.contains("连接池配置优化") && item.contains("order DB pool of"), "{item}");
    let badge = c
        .execute(
            "return Array.from(document.querySelectorAll('li.check-item'))
                .find(li => li.textContent.includes('code.connection_pools'))
                .querySelector('.badge').className;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(badge, json!("badge cs-ok"), "{item}");
    // The seed's twenty items in its order, under its Chinese names; at most four left to an operator's tick.
    let names = c
        .execute(
            "return Array.from(document.querySelectorAll('li.check-item b[lang=zh]')).map(b => b.textContent);",
            vec![],
        )
        .await
        .unwrap();
    let seed = [
        "Redis 集群部署（主从+哨兵）",
        "MySQL 读写分离",
        "CDN 静态资源加速",
        "负载均衡配置",
        "热点数据缓存",
        "异步非阻塞处理",
        "连接池配置优化",
        "SQL 语句优化",
        "DDoS 防护",
        "CC 攻击防护",
        "接口防刷",
        "数据加密",
        "关键指标监控",
        "日志收集分析",
        "实时告警系统",
        "性能分析工具",
        "数据备份策略",
        "故障转移方案",
        "降级策略",
        "限流熔断",
    ];
    assert_eq!(names, json!(seed));
    let manual = c.find_all(Locator::Css("li.check-item .badge.cs-manual")).await.unwrap().len();
    assert!((1..=4).contains(&manual), "{manual} manual items");
    // Below, the benchmarks' last results: none kept where this backend looks.
    wait_text(&c, ".bench-card", "No benchmark results kept").await;
    wait_element(&c, "li.check-item .badge.cs-manual").await;
    screenshot(&c, "checklist").await;

    c.close().await.unwrap();
    drop(driver);
}
