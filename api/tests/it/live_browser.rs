//! The live page in a real browser: Debian's `chromium`, driven through `chromedriver`
//! (WebDriver, fantoccini). `.ci/run` installs both; without them this test fails and
//! says so.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use fantoccini::{ClientBuilder, Locator};
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{TestServer, eventually};

/// `chromedriver` on a free loopback port, in a process group of its own: dropped (a
/// passing test, or a failing one unwinding), the whole group is killed, Chromium with
/// it. Killing chromedriver alone leaves the browser running.
struct Driver {
    child: tokio::process::Child,
    url: String,
}

impl Driver {
    async fn start() -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = tokio::process::Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .process_group(0)
            .spawn()
            .expect("chromedriver runs (apt-get install chromium chromium-driver)");
        let url = format!("http://127.0.0.1:{port}");
        let status = format!("{url}/status");
        eventually("chromedriver to listen", || async {
            let ready = reqwest::get(&status).await.ok()?;
            ready.status().is_success().then_some(())
        })
        .await;
        Driver { child, url }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .status();
        }
        let _ = self.child.start_kill();
    }
}

/// Where the screenshot goes: `$FIRSTCOME_ARTIFACTS_DIR`, else `target/artifacts`.
fn artifacts_dir() -> PathBuf {
    std::env::var_os("FIRSTCOME_ARTIFACTS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/artifacts"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_page_counts_down_to_sold_out_in_chromium() {
    let s = TestServer::start_configured(|c| firstcome_api::Config {
        live_interval_ms: 50,
        ..c
    })
    .await;
    let c = s
        .create_campaign(json!({ "name": "봄맞이 선착순 쿠폰", "total_stock": 5 }))
        .await;
    let id = c["id"].as_str().unwrap().to_string();

    let driver = Driver::start().await;
    let capabilities = json!({
        "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            // Root in a container: no sandbox. The browser asks for Korean first.
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=900,720",
                     "--lang=ko-KR", "--accept-lang=ko-KR,ko,en"],
            "prefs": { "intl.accept_languages": "ko-KR,ko,en" },
        }
    });
    let capabilities = match capabilities {
        serde_json::Value::Object(map) => map,
        _ => unreachable!(),
    };
    let browser = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .expect("a Chromium session");
    browser
        .goto(&format!("{}/live/{id}", s.base))
        .await
        .unwrap();

    // The text of element `#id`, once it is `want`.
    let shows = |element: &'static str, want: String| {
        let browser = &browser;
        async move {
            eventually(&format!("#{element} to show {want}"), || {
                let want = want.clone();
                async move {
                    let text = browser
                        .find(Locator::Id(element))
                        .await
                        .ok()?
                        .text()
                        .await
                        .ok()?;
                    (text == want).then_some(())
                }
            })
            .await
        }
    };
    shows("remaining", "5".into()).await;
    shows("status", "발급 중".into()).await;
    shows("name", "봄맞이 선착순 쿠폰".into()).await;
    shows("connection", "실시간".into()).await;

    for user in ["u1", "u2", "u3"] {
        assert_eq!(s.issue(&id, user).await.0, StatusCode::CREATED);
    }
    shows("remaining", "2".into()).await;
    shows("issued", "3".into()).await;
    for user in ["u4", "u5"] {
        assert_eq!(s.issue(&id, user).await.0, StatusCode::CREATED);
    }
    shows("remaining", "0".into()).await;
    shows("status", "매진".into()).await;
    let bar = browser
        .find(Locator::Id("bar"))
        .await
        .unwrap()
        .attr("aria-valuenow")
        .await
        .unwrap();
    assert_eq!(bar.as_deref(), Some("100"));

    // The bar slides to its width (a CSS transition): the picture once it is there.
    eventually("the bar to fill", || async {
        let full = browser
            .execute(
                "const f = document.getElementById('bar-fill'), b = document.getElementById('bar');
                 return f.getBoundingClientRect().width === b.getBoundingClientRect().width;",
                vec![],
            )
            .await
            .ok()?;
        (full == json!(true)).then_some(())
    })
    .await;
    let png = browser.screenshot().await.unwrap();
    let dir = artifacts_dir();
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("live-page.png"), &png).unwrap();
    // A PNG, and not a blank one.
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 4_000,
        "{} bytes",
        png.len()
    );

    browser.close().await.unwrap();
    drop(driver);
    tokio::time::timeout(Duration::from_secs(10), s.server.shutdown())
        .await
        .unwrap();
}
