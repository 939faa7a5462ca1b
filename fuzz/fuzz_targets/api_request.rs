//! The HTTP API's routing, path and query parsing (`/v1/accounts?band=…&limit=…`,
//! `/v1/accounts/{id}`) through the real router, on a store holding a few accounts. Input: one byte
//! choosing a prefix (the queue's query, an account path, or none), then the rest of the URI.
//! Every answer is a status other than 500, with JSON where it says JSON.
#![no_main]

use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::Router;
use kizashi::api::{router, Shared};
use kizashi::config::Settings;
use kizashi::core::state::{Facts, Snapshot};
use kizashi::core::{AccountState, Band};
use kizashi::store::Store;
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;

struct Setup {
    rt: tokio::runtime::Runtime,
    app: Router,
    /// Held for the process's life (a leaked one is what LeakSanitizer reports at exit).
    _dir: tempfile::TempDir,
}

fn setup() -> &'static Setup {
    static S: OnceLock<Setup> = OnceLock::new();
    S.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(dir.path(), false, kizashi::store::Budget { total: 64 << 20 }).expect("store");
        let mut b = store.batch();
        for (i, id) in ["acme", "a b", "ünï", "x%2Fy"].into_iter().enumerate() {
            let mut s = AccountState {
                facts: Facts { name: Some(id.into()), seats: Some(10), segment: Some(["smb", "enterprise"][i % 2].into()), ..Facts::default() },
                ..AccountState::default()
            };
            if i > 0 {
                let values = [Some(i as f64); kizashi::core::measures::N_MEASURES];
                s.score.last = Some(Snapshot { at_ms: 1_795_000_000_000, score: 30.0 * i as f64, band: Band::ALL[i % 3], values: values.into() });
                s.score.band = Some(Band::ALL[i % 3]);
                s.score.scorecard = "default@1".into();
            }
            b.put_account(i as u32 % 2, id, &s);
        }
        store.write(b).expect("write");
        let shared: Arc<Shared> = Shared::new(&Settings::default());
        shared.attach_store(&store, true).expect("attach");
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        Setup { rt, app: router(shared), _dir: dir }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else { return };
    let prefix: &[u8] = match which % 3 {
        0 => b"/v1/accounts?",
        1 => b"/v1/accounts/",
        _ => b"",
    };
    let uri = [prefix, rest].concat();
    // What hyper would refuse never reaches the router.
    let Ok(uri) = http::Uri::try_from(uri.as_slice()) else { return };
    let Ok(req) = http::Request::builder().uri(uri.clone()).body(Body::empty()) else { return };
    let s = setup();
    let res = s.rt.block_on(s.app.clone().oneshot(req)).expect("infallible");
    let status = res.status();
    assert_ne!(status, http::StatusCode::INTERNAL_SERVER_ERROR, "{uri}");
    let json = res.headers().get(http::header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    let body = s.rt.block_on(axum::body::to_bytes(res.into_body(), 16 << 20)).expect("body");
    if json {
        serde_json::from_slice::<serde_json::Value>(&body).unwrap_or_else(|e| panic!("{uri}: not JSON ({e})"));
    }
});
