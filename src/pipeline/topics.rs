//! The topics kizashi needs: input topics present and co-partitioned, output topics present,
//! the changelog created if asked.

use super::*;

/// Checks that the input topics exist and are co-partitioned, and that the output topics exist.
/// Returns the input partition count.
pub fn check_topics(settings: &Settings, consumer: &BaseConsumer<impl ConsumerContext>) -> Result<i32> {
    let md = consumer.fetch_metadata(None, settings.kafka.startup_timeout).with_context(|| {
        format!(
            "cannot reach Kafka at {} within {} (kafka.startup_timeout)",
            settings.kafka.brokers,
            humantime::format_duration(settings.kafka.startup_timeout)
        )
    })?;
    let count = |name: &str| md.topics().iter().find(|t| t.name() == name && t.error().is_none()).map(|t| t.partitions().len() as i32);
    let t = &settings.kafka.topics;
    let missing: Vec<&str> = [&t.usage, &t.support, &t.accounts, &t.actions, &t.alerts, &t.scores, &t.dead_letter]
        .into_iter()
        .filter(|n| count(n).is_none())
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        bail!("these topics do not exist: {} (create them; see the README's topic table)", missing.join(", "));
    }
    let inputs = [&t.usage, &t.support, &t.accounts, &t.actions].map(|n| (n.as_str(), count(n).unwrap_or(0)));
    if inputs.iter().any(|(_, n)| *n != inputs[0].1) {
        bail!(
            "input topics are not co-partitioned: {}; all four must have the same partition count so one instance owns an account on every topic",
            inputs.iter().map(|(n, c)| format!("{n} has {c}")).collect::<Vec<_>>().join(", ")
        );
    }
    let partitions = inputs[0].1;
    if let Some(changelog) = settings.kafka.changelog_topic() {
        match count(&changelog) {
            Some(n) if n == partitions => {
                // In the background: a broker that does not answer DescribeConfigs (librdkafka's
                // mock cluster) must not hold the start up.
                let (settings, changelog) = (settings.clone(), changelog.clone());
                let _ = std::thread::Builder::new()
                    .name("kizashi-changelog-check".into())
                    .spawn(move || warn_if_changelog_too_small(&settings, &changelog));
            }
            Some(n) => bail!(
                "the changelog topic {changelog} has {n} partitions; it needs {partitions}, one per input partition"
            ),
            None if settings.kafka.create_changelog => create_changelog(settings, partitions)?,
            None => bail!(
                "the changelog topic {changelog} does not exist: create it compacted with {partitions} partitions, or set kafka.create_changelog = true"
            ),
        }
    }
    Ok(partitions)
}

/// A changelog topic made before kizashi set its record limit (or by hand) may take smaller
/// records than a state can be: the first state over it would stop `run`. Says so at start, with
/// what to set; never stops or delays the start (a broker that cannot describe configs is only
/// logged).
pub(super) fn warn_if_changelog_too_small(settings: &Settings, name: &str) {
    use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
    let need = settings.changelog_record_bytes();
    let described = (|| -> Result<Option<u64>> {
        let admin: AdminClient<rdkafka::client::DefaultClientContext> = client_config(settings, Client::Producer).create()?;
        let opts = AdminOptions::new().request_timeout(Some(settings.kafka.startup_timeout));
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let results = rt.block_on(admin.describe_configs([&ResourceSpecifier::Topic(name)], &opts))?;
        let resource = results.into_iter().next().context("no answer")?.map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(resource.get("max.message.bytes").and_then(|e| e.value.as_deref()?.parse().ok()))
    })();
    match described {
        Ok(Some(limit)) if limit < need => tracing::warn!(
            topic = %name,
            max_message_bytes = limit,
            needed = need,
            "the changelog topic takes smaller records than an account's state can be (state.max_account_bytes and the ticket and retention limits): a state over it would stop kizashi; raise the topic's max.message.bytes to at least the needed size"
        ),
        Ok(_) => {}
        Err(e) => tracing::info!(topic = %name, error = %format!("{e:#}"), "could not read the changelog topic's max.message.bytes"),
    }
}

/// Creates the changelog topic: compacted, one partition per input partition.
pub(super) fn create_changelog(settings: &Settings, partitions: i32) -> Result<()> {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    let name = &settings.kafka.changelog_topic().unwrap_or_default();
    let admin: AdminClient<rdkafka::client::DefaultClientContext> =
        client_config(settings, Client::Producer).create().context("creating the Kafka admin client")?;
    // Room for the largest state (a broker's default is about 1 MB).
    let max_message = settings.changelog_record_bytes().to_string();
    let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(-1))
        .set("cleanup.policy", "compact")
        .set("max.message.bytes", &max_message);
    let opts = AdminOptions::new().operation_timeout(Some(settings.kafka.startup_timeout));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let results = rt
        .block_on(admin.create_topics([&topic], &opts))
        .with_context(|| format!("creating the changelog topic {name}"))?;
    for r in results {
        match r {
            Ok(_) => tracing::info!(topic = %name, partitions, "created the changelog topic (compacted)"),
            Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, e)) => bail!("creating the changelog topic {t}: {e} (create it compacted with {partitions} partitions, or set kafka.create_changelog = false and kafka.topics.changelog = \"\")"),
        }
    }
    Ok(())
}
