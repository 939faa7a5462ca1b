//! `kizashi run`: the pipeline, with the HTTP port of `http.listen` open (unless empty).

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::Result;

use crate::config::Settings;
use crate::runtime::Status;

/// Runs until `stop` is set (SIGTERM/SIGINT), serving the HTTP port on what the pipeline reports.
pub fn run(settings: &Settings, stop: Arc<AtomicBool>) -> Result<()> {
    let status = Status::new(settings);
    let _server = match settings.http.listen.as_str() {
        "" => None,
        listen => {
            let actions = std::sync::Arc::new(super::actions::KafkaActions::new(settings)?);
            Some(crate::api::serve(listen, crate::api::Shared::new(settings, status.clone()).with_actions(actions))?)
        }
    };
    crate::pipeline::run_with(settings, stop, status)
}
