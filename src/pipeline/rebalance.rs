//! Partitions assigned and revoked (librdkafka's rebalance callback), and the restoration of an
//! assigned partition's state from the changelog or a standby copy.

use super::*;

impl Core {
    /// Takes over a partition whose standby copy is caught up: its due index is rebuilt, and
    /// what the last run left in the outbox for it is dropped (its owner since regenerated it).
    /// Takes over a partition whose standby copy is caught up: its due index is rebuilt, and
    /// what the last run left in the outbox for it is dropped (its owner since regenerated it).
    pub(super) fn take_over_standby_copy(&mut self, partition: u32) -> Result<()> {
        if let Some(s) = &self.standby {
            s.touched.lock().expect("standby lock").remove(&partition);
        }
        if let Some(stale) = self.leftover.remove(&partition) {
            self.acked.extend(stale.into_iter().map(|(seq, _)| seq));
        }
        self.engine.rebuild_due(partition)?;
        self.shared.load_partition(self.engine.store(), partition)?;
        Ok(())
    }

    /// Sends the outbox entries the last run left for a partition whose local state is kept.
    pub(super) fn resend_leftover(&mut self, partition: u32) {
        let Some(entries) = self.leftover.remove(&partition) else { return };
        tracing::info!(partition, entries = entries.len(), "resending what the outbox held for this partition");
        if let Some(outbox) = &mut self.outbox {
            for (seq, e) in entries {
                outbox.send(seq, e, None);
            }
        }
    }

    /// Queues for the changelog the local states of a partition still marked pending (a kept
    /// partition whose changelog did not catch up before it was revoked).
    pub(super) fn requeue_pending(&mut self, partition: u32) -> Result<()> {
        let Some(cl) = &mut self.changelog else { return Ok(()) };
        let store = self.engine.store();
        let mut states = Vec::new();
        for (p, id) in store.changelog_pending()?.into_iter().filter(|(p, _)| *p == partition) {
            if let Some(bytes) = store.get_account_encoded(p, &id)? {
                states.push((p, CompactString::from(id.as_str()), bytes));
            }
        }
        if !states.is_empty() {
            let (offsets, stream_time) = store.offsets(partition)?;
            tracing::info!(partition, accounts = states.len(), "queueing locally kept states the changelog does not have yet");
            cl.push(self.next_seq, states, vec![(partition, changelog::Checkpoint { offsets, stream_time })]);
        }
        Ok(())
    }

    /// On assignment: restores a partition from the changelog if its local state is missing or
    /// behind the changelog's checkpoint (see `changelog`'s header).
    pub(super) fn apply_restore(&mut self, partition: u32, generation: u64, restored: changelog::Restored, started: Instant) -> Result<()> {
        let touched = self.standby.as_ref().is_some_and(|s| s.touched.lock().expect("standby lock").contains(&partition));
        if touched {
            // A standby copy that was not caught up is never trusted: restore in full.
            if let Some(s) = &self.standby {
                s.touched.lock().expect("standby lock").remove(&partition);
            }
            if let Some(stale) = self.leftover.remove(&partition) {
                self.acked.extend(stale.into_iter().map(|(seq, _)| seq));
            }
            let accounts = self.engine.restore_partition(
                partition,
                generation,
                &restored.checkpoint.as_ref().map(|c| c.offsets.clone()).unwrap_or_default(),
                restored.checkpoint.as_ref().and_then(|c| c.stream_time),
            )?;
            let seconds = started.elapsed().as_secs_f64();
            self.shared.metrics.restored(accounts, seconds);
            tracing::info!(partition, accounts, records = restored.records, seconds, "the standby copy was behind: restored the partition from the changelog");
            return Ok(());
        }
        let (local, _) = self.engine.store().offsets(partition)?;
        let Some(cp) = restored.checkpoint else {
            tracing::info!(partition, records = restored.records, "changelog has no checkpoint for this partition: using local state");
            self.engine.store().clear_staged(partition, generation)?;
            self.resend_leftover(partition);
            return self.requeue_pending(partition);
        };
        if !cp.ahead_of(&local) {
            tracing::info!(partition, ?local, changelog = ?cp.offsets, "local state is at or ahead of the changelog: keeping it");
            self.engine.store().clear_staged(partition, generation)?;
            self.resend_leftover(partition);
            return self.requeue_pending(partition);
        }
        if let Some(stale) = self.leftover.remove(&partition) {
            tracing::info!(partition, entries = stale.len(), "dropping outbox entries left from an older ownership of this partition");
            self.acked.extend(stale.into_iter().map(|(seq, _)| seq));
        }
        let accounts = self.engine.restore_partition(partition, generation, &cp.offsets, cp.stream_time)?;
        let seconds = started.elapsed().as_secs_f64();
        self.shared.metrics.restored(accounts, seconds);
        tracing::info!(
            partition,
            accounts,
            records = restored.records,
            bytes = restored.bytes,
            seconds,
            ?local,
            changelog = ?cp.offsets,
            "local state was missing or behind: restored the partition from the changelog"
        );
        Ok(())
    }

    pub(super) fn stored_offset(&self, topic: &str, partition: u32) -> Result<Offset> {
        let (offsets, _) = self.engine.store().offsets(partition)?;
        Ok(offsets.into_iter().find(|(t, _)| t == topic).map_or(self.start_without_state, |(_, o)| Offset::Offset(o)))
    }
}

/// A changelog reader's result for one partition.
pub(super) struct RestoreReport {
    pub(super) partition: u32,
    pub(super) generation: u64,
    pub(super) started: Instant,
    /// The standby copy was caught up with the changelog: taken over without reading it.
    pub(super) standby_caught_up: bool,
    pub(super) restored: Result<changelog::Restored>,
}

impl Core {
    /// Applies a changelog reader's result (if the partition is still ours from the same
    /// assignment): restores or keeps the local state, seeks the partition's three topics to the
    /// offsets the state covers, and resumes it.
    pub(super) fn finish_restore(&mut self, consumer: &BaseConsumer<PipelineContext>, report: RestoreReport) -> Result<()> {
        let p = report.partition;
        if self.restoring.get(&p) != Some(&report.generation) {
            // Revoked or reassigned since: a newer check is under way or not needed.
            self.engine.store().clear_staged(p, report.generation)?;
            return Ok(());
        }
        let restored = match report.restored {
            Ok(r) => r,
            // Processing on stale local state would apply records twice or skip them: stop
            // instead (a restart tries again).
            Err(e) => bail!("reading the changelog for partition {p} failed: {e:#}"),
        };
        if report.standby_caught_up {
            tracing::info!(partition = p, "the standby copy is caught up with the changelog: taken over without a restore");
            self.take_over_standby_copy(p)?;
        } else {
            self.apply_restore(p, report.generation, restored, report.started)?;
        }
        self.restoring.remove(&p);
        let mut tpl = TopicPartitionList::new();
        for k in 0..crate::event::N_KINDS {
            let topic = self.topics[k].clone();
            let offset = self.stored_offset(&topic, p)?;
            consumer
                .seek(&topic, p as i32, offset, Duration::from_secs(10))
                .with_context(|| format!("seeking {topic} partition {p} after restoration"))?;
            if let Offset::Offset(o) = offset {
                self.queues.entry(p).or_default().next_offset[k] = Some(o);
                self.positions.insert((k, p as i32), o);
            }
            tpl.add_partition(&topic, p as i32);
        }
        consumer.resume(&tpl).with_context(|| format!("resuming partition {p}"))?;
        self.shared.metrics.restoring(self.restoring.len());
        if self.restoring.is_empty() {
            // The staged files' disk back, off the main loop: a million accounts' take ~12 s.
            let store = self.engine.store().clone();
            let spawned = std::thread::Builder::new().name("kizashi-staged".into()).spawn(move || store.drop_staged_files());
            match spawned {
                Ok(handle) => {
                    self.staged_drops.retain(|h| !h.is_finished());
                    self.staged_drops.push(handle);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "starting the thread that drops restored states' files failed; they go at the next start")
                }
            }
            self.shared.ready(self.engine.partitions());
        }
        Ok(())
    }
}

pub(super) struct PipelineContext {
    pub(super) core: Arc<Mutex<Core>>,
    /// Bumped by every rebalance: records polled before one belong to the old assignment.
    pub(super) generation: Arc<std::sync::atomic::AtomicU64>,
}

impl ClientContext for PipelineContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        log_librdkafka("consumer", level, fac, log_message);
    }

    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        log_client_error("consumer", &error, reason);
    }
}

impl ConsumerContext for PipelineContext {
    /// Assigns each partition once, at the offset stored with its state (assigning first and
    /// seeking after is the trap: two assigns, the first at the wrong offsets). On revoke, the
    /// in-flight batch is written before the partitions go.
    fn rebalance(&self, consumer: &BaseConsumer<Self>, err: RDKafkaRespErr, tpl: &mut TopicPartitionList) {
        let cooperative = matches!(consumer.rebalance_protocol(), RebalanceProtocol::Cooperative);
        let mut core = self.core.lock().expect("core lock");
        let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => core.assign(consumer, tpl, generation, cooperative),
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => core.revoke(consumer, tpl, cooperative),
            other => {
                tracing::error!(error = ?other, "rebalance error; dropping the assignment");
                let _ = consumer.unassign();
            }
        }
    }
}

impl Core {
    /// Partitions assigned: the account index loaded, each partition checked against the
    /// changelog on a thread of its own (paused meanwhile), and consumption started from the
    /// offsets stored with the state.
    fn assign(&mut self, consumer: &BaseConsumer<PipelineContext>, tpl: &mut TopicPartitionList, generation: u64, cooperative: bool) {
        let elems: Vec<(String, i32)> =
            tpl.elements().iter().map(|e| (e.topic().to_string(), e.partition())).collect();
        let mut parts: Vec<u32> = elems.iter().map(|(_, p)| *p as u32).collect();
        parts.sort_unstable();
        parts.dedup();
        for p in parts {
            if let Err(e) = self.shared.load_partition(self.engine.store(), p) {
                tracing::error!(partition = p, error = %e, "loading the account index failed");
            }
            self.start_restore(p, generation);
        }
        for (topic, partition) in &elems {
            let p = *partition as u32;
            let offset = match self.stored_offset(topic, p) {
                Ok(o) => o,
                Err(e) => {
                    tracing::error!(error = %e, "reading stored offsets failed");
                    self.start_without_state
                }
            };
            if let Err(e) = tpl.set_partition_offset(topic, *partition, offset) {
                tracing::error!(%topic, partition, error = %e, "setting the start offset failed");
            }
            if let Err(e) = self.engine.open_partition(p) {
                tracing::error!(partition = p, error = %e, "opening partition state failed");
            }
            if let (Some(k), Offset::Offset(o)) = (self.kind_of(topic), offset) {
                self.queues.entry(p).or_default().next_offset[k as usize] = Some(o);
                // Kafka's committed offsets (lag monitoring) follow the stored ones.
                self.positions.insert((k as usize, *partition), o);
            }
            tracing::info!(%topic, partition, ?offset, "partition assigned");
        }
        let r = if cooperative { consumer.incremental_assign(tpl) } else { consumer.assign(tpl) };
        if let Err(e) = r {
            tracing::error!(error = %e, "assign failed");
        }
        if let Some(s) = &self.standby {
            s.started.store(true, Ordering::SeqCst);
        }
        if self.restoring.is_empty() {
            self.shared.ready(self.engine.partitions());
        } else {
            if let Err(e) = consumer.pause(tpl) {
                tracing::error!(error = %e, "pausing partitions for restoration failed");
            }
            self.shared.progress(format!("checking {} partition(s) against the changelog", self.restoring.len()));
            self.shared.metrics.restoring(self.restoring.len());
        }
    }

    /// Starts reading partition `p`'s changelog (or takes the standby's copy if it is caught up);
    /// the reader reports on `restore_tx`.
    fn start_restore(&mut self, p: u32, generation: u64) {
        let Some((config, topic, timeout)) = self.changelog_source.clone() else { return };
        // Each partition is checked against the changelog (and restored if behind)
        // on a thread of its own while it is paused; the others go on.
        self.restoring.insert(p, generation);
        // The standby stops writing this partition before anything reads it; a
        // copy is used only if it had applied the changelog up to its end.
        let standby_at = self.standby.as_ref().and_then(|s| {
            s.owned.lock().expect("standby lock").insert(p);
            s.touched.lock().expect("standby lock").contains(&p).then(|| s.position(p)).flatten()
        });
        let (tx, shared) = (self.restore_tx.clone(), self.shared.clone());
        let store = self.engine.store().clone();
        let spawned = std::thread::Builder::new().name(format!("kizashi-restore-{p}")).spawn(move || {
            let started = Instant::now();
            if let Some(at) = standby_at {
                let end = changelog::end_offset(&config, &topic, p, timeout);
                if end.as_ref().is_ok_and(|e| at >= *e) {
                    let _ = tx.send(RestoreReport {
                        partition: p,
                        generation,
                        started,
                        standby_caught_up: true,
                        restored: Ok(changelog::Restored::default()),
                    });
                    return;
                }
            }
            let r = changelog::read_partition(&config, &topic, p, &store, generation, timeout, &shared.metrics, |read, total| {
                shared.progress(format!("restoring partition {p} from the changelog: {read} of {total} records read"));
            });
            let _ = tx.send(RestoreReport { partition: p, generation, started, standby_caught_up: false, restored: r });
        });
        if let Err(e) = spawned {
            tracing::error!(partition = p, error = %e, "starting a changelog reader failed; stopping");
            self.restoring.remove(&p);
            self.fatal.get_or_insert(anyhow::Error::new(e).context(format!("starting the changelog reader of partition {p}")));
        }
    }

    /// Partitions revoked: the processed part of the batch written and settled, their buffered
    /// records and in-memory state dropped (and their local state too with `state.on_revoke =
    /// drop`).
    fn revoke(&mut self, consumer: &BaseConsumer<PipelineContext>, tpl: &mut TopicPartitionList, cooperative: bool) {
        // The processed part of the batch is written, its outbox acknowledged and the
        // changelog caught up, so whoever owns these partitions next starts from exactly
        // here. Buffered, unprocessed records are dropped: their offsets are not stored,
        // so they are read again.
        let settled = match self.settle() {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "writing the in-flight batch on revoke failed");
                false
            }
        };
        let revoked: Vec<(String, i32)> =
            tpl.elements().iter().map(|e| (e.topic().to_string(), e.partition())).collect();
        for (topic, partition) in &revoked {
            tracing::info!(%topic, partition, "partition revoked");
            if let Some(k) = self.kind_of(topic) {
                if let Some(q) = self.queues.get_mut(&(*partition as u32)) {
                    q.queues[k as usize].clear();
                    q.raw_bytes[k as usize] = 0;
                }
            }
        }
        let revoked_kinds: Vec<(usize, i32)> = revoked
            .iter()
            .filter_map(|(t, p)| self.kind_of(t).map(|k| (k as usize, *p)))
            .collect();
        self.positions.retain(|k, _| !revoked_kinds.contains(k));
        // Paused for the merge's bound: resumed before they go, so a later assignment
        // of them fetches.
        let mut resume = TopicPartitionList::new();
        for (k, p) in &revoked_kinds {
            if let Some(i) = self.paused.iter().position(|x| *x == (*p as u32, *k)) {
                self.paused.swap_remove(i);
                resume.add_partition(&self.topics[*k], *p);
            }
        }
        if resume.count() > 0 {
            if let Err(e) = consumer.resume(&resume) {
                tracing::warn!(error = %e, "resuming revoked partitions failed");
            }
        }
        let mut parts: Vec<u32> = revoked.iter().map(|(_, p)| *p as u32).collect();
        parts.dedup();
        for p in parts {
            self.queues.remove(&p);
            self.restoring.remove(&p);
            self.engine.close_partition(p);
            if let Some(s) = &self.standby {
                s.owned.lock().expect("standby lock").remove(&p);
            }
            self.shared.board.drop_partition(p);
            if self.drop_on_revoke && settled && self.changelog.is_some() {
                let store = self.engine.store();
                let mut b = store.batch();
                b.delete_partition(p);
                match store.write(b) {
                    Ok(()) => tracing::info!(partition = p, "revoked partition's local state dropped (state.on_revoke = drop)"),
                    Err(e) => tracing::warn!(partition = p, error = %e, "dropping a revoked partition's local state failed"),
                }
            }
        }
        for (topic, partition) in &revoked {
            self.shared.metrics.forget_lag(topic, *partition);
        }
        match self.engine.partitions() {
            left if left.is_empty() => self.shared.not_ready("waiting for partition assignment (rebalancing)"),
            left => self.shared.ready(left),
        }
        let r = if cooperative { consumer.incremental_unassign(tpl) } else { consumer.unassign() };
        if let Err(e) = r {
            tracing::error!(error = %e, "unassign failed");
        }
    }
}
