//! Ending a batch: the engine's output becomes outbox entries, written with the states,
//! offsets and stream time in one RocksDB batch, then handed to the producer; acknowledgements
//! are collected and the changelog moved on.

use super::*;

impl Core {
    /// Writes the batch so far, mid-batch: the accounts it changed went over the budget's
    /// share (a day's timers reach every account). Each write is a batch like any other (its
    /// states with the offsets of the records applied so far), so the guarantees hold.
    /// Writes the batch so far, mid-batch: the accounts it changed went over the budget's
    /// share (a day's timers reach every account). Each write is a batch like any other (its
    /// states with the offsets of the records applied so far), so the guarantees hold.
    fn cut(&mut self) -> Result<()> {
        self.collect()?;
        self.commit_batch()?;
        self.send_pending();
        self.cuts += 1;
        Ok(())
    }

    /// Ends a batch: turns the engine's output into outbox entries and writes state, offsets,
    /// stream time and outbox in one RocksDB batch.
    /// The engine's output as outbox entries (with an alert's event time): alerts, each
    /// account's last score update of the batch, dead letters with their headers.
    fn outbox_entries(&self, out: crate::engine::Output) -> Vec<(OutboxEntry, Option<i64>)> {
        let emitted = now_ms();
        let metrics = &self.shared.metrics;
        let mut entries = Vec::with_capacity(out.alerts.len() + out.scores.len() + out.rejected.len());
        for mut a in out.alerts {
            a.emitted_at_ms = emitted;
            metrics.alert(&a);
            entries.push((
                OutboxEntry {
                    kind: OutputKind::Alert,
                    key: Some(a.account_id.clone().into_bytes()),
                    payload: a.to_json().into_bytes(),
                    headers: vec![],
                },
                Some(a.event_time_ms),
            ));
        }
        // health-scores is compacted (latest per account wins): within a batch only each
        // account's last update is worth sending.
        let mut last_of: FxHashMap<&str, usize> = FxHashMap::default();
        for (i, s) in out.scores.iter().enumerate() {
            last_of.insert(s.account_id.as_str(), i);
        }
        let keep: Vec<bool> = (0..out.scores.len()).map(|i| last_of.get(out.scores[i].account_id.as_str()) == Some(&i)).collect();
        drop(last_of);
        let mut scores = 0;
        for (mut s, _) in out.scores.into_iter().zip(keep).filter(|(_, k)| *k) {
            s.emitted_at_ms = emitted;
            scores += 1;
            entries.push((
                OutboxEntry {
                    kind: OutputKind::Score,
                    key: Some(s.account_id.clone().into_bytes()),
                    payload: s.to_json().into_bytes(),
                    headers: vec![],
                },
                None,
            ));
        }
        metrics.score_updates(scores);
        for r in out.rejected {
            metrics.rejected(&r, "dead-letter topic");
            let mut entry = OutboxEntry {
                kind: OutputKind::DeadLetter,
                key: r.key,
                payload: r.raw,
                headers: vec![
                    ("kizashi.reason".into(), r.reject.reason.code().as_bytes().to_vec()),
                    ("kizashi.detail".into(), r.reject.detail.into_bytes()),
                    ("kizashi.source.topic".into(), r.source.into_bytes()),
                    ("kizashi.source.partition".into(), r.partition.to_string().into_bytes()),
                    ("kizashi.source.offset".into(), r.offset.to_string().into_bytes()),
                ],
            };
            entry.fit(self.dead_letter_max);
            entries.push((entry, None));
        }
        entries
    }

    pub(super) fn commit_batch(&mut self) -> Result<()> {
        let out = self.engine.take_output();
        let entries = self.outbox_entries(out);
        let metrics = &self.shared.metrics;
        metrics.duplicates(self.engine.stats.duplicates - self.duplicates_counted);
        self.duplicates_counted = self.engine.stats.duplicates;
        metrics.already_applied(self.engine.stats.already_applied - self.already_applied_counted);
        self.already_applied_counted = self.engine.stats.already_applied;
        metrics.memory("accounts", self.engine.accounts_bytes() as u64);
        let first = self.next_seq;
        self.next_seq += entries.len() as u64;
        // Marks of accounts acknowledged on the changelog go in a write of their own before this
        // batch's, which may mark some of them again.
        if !self.changelog_done.is_empty() {
            let store = self.engine.store();
            let mut b = store.batch();
            for (p, id) in self.changelog_done.drain(..) {
                b.delete_changelog_pending(p, &id);
            }
            store.write(b)?;
        }
        let acked = std::mem::take(&mut self.acked);
        let encoded: Vec<Vec<u8>> = entries.iter().map(|(e, _)| e.encode()).collect();
        self.engine.flush(|b| {
            for (i, bytes) in encoded.iter().enumerate() {
                b.put_outbox(first + i as u64, bytes);
            }
            for seq in &acked {
                b.delete_outbox(*seq);
            }
        })?;
        self.pending.extend(entries.into_iter().enumerate().map(|(i, (e, t))| (first + i as u64, e, t)));
        if let Some(cl) = &mut self.changelog {
            let states = self.engine.take_captured();
            let mut parts: Vec<u32> = states.iter().map(|(p, _, _)| *p).collect();
            parts.sort_unstable();
            parts.dedup();
            let mut checkpoints = Vec::with_capacity(parts.len());
            for p in parts {
                let (offsets, stream_time) = self.engine.store().offsets(p)?;
                checkpoints.push((p, changelog::Checkpoint { offsets, stream_time }));
            }
            cl.push(self.next_seq, states, checkpoints);
        }
        Ok(())
    }

    /// Hands the written outbox entries to the producer.
    pub(super) fn send_pending(&mut self) {
        let pending = std::mem::take(&mut self.pending);
        if let Some(outbox) = &mut self.outbox {
            for (seq, e, t) in pending {
                outbox.send(seq, e, t);
            }
            self.shared.metrics.outbox_depth(outbox.in_flight.len());
        }
    }

    /// Collects outbox acknowledgements (deleted with the next batch) and moves the changelog on.
    pub(super) fn collect(&mut self) -> Result<()> {
        let unacked = match &mut self.outbox {
            Some(outbox) => {
                let acked = outbox.take_acked(&self.shared.metrics);
                self.acked.extend(acked);
                outbox.in_flight.keys().next().copied()
            }
            None => None,
        };
        self.pump_changelog(unacked)
    }

    /// Writes the in-flight batch, then waits up to `grace` until every outbox entry is
    /// acknowledged and the changelog has caught up with it. Returns whether it all settled.
    pub(super) fn settle(&mut self) -> Result<bool> {
        let deadline = Instant::now() + self.grace;
        self.commit_batch()?;
        self.send_pending();
        loop {
            self.collect()?;
            let outbox_empty = self.outbox.as_ref().is_none_or(|o| o.in_flight.is_empty());
            if outbox_empty {
                break;
            }
            if Instant::now() >= deadline {
                self.commit_batch()?;
                return Ok(false);
            }
            if let Some(o) = &self.outbox {
                o.flush(Duration::from_millis(50));
            }
        }
        let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_secs(1));
        let mut settled = true;
        if let Some(cl) = &mut self.changelog {
            if let Err(e) = cl.drain(left) {
                tracing::warn!(error = %format!("{e:#}"), "the changelog did not catch up; pending marks stay and are sent again");
                settled = false;
            }
        }
        self.pump_changelog(None)?;
        // Writes the outbox deletions and pending-mark deletions just collected.
        self.commit_batch()?;
        Ok(settled)
    }

    /// Sends the changelog batches whose outbox entries are all acknowledged and collects the
    /// changelog's acknowledgements.
    pub(super) fn pump_changelog(&mut self, outbox_unacked: Option<u64>) -> Result<()> {
        let unacked = outbox_unacked.unwrap_or(self.next_seq).min(self.next_seq);
        if let Some(cl) = &mut self.changelog {
            cl.pump(unacked);
            cl.collect()?;
            self.changelog_done.extend(cl.take_done());
            self.shared.metrics.changelog(cl.records_acked, cl.bytes_sent, cl.depth());
        }
        Ok(())
    }

}

impl Driver for Core {
    fn engine(&mut self) -> &mut Engine {
        &mut self.engine
    }

    fn cut(&mut self) -> Result<()> {
        Core::cut(self)
    }
}

pub(super) fn positions_tpl(positions: &FxHashMap<(usize, i32), i64>, topics: &[String; crate::event::N_KINDS]) -> Option<TopicPartitionList> {
    if positions.is_empty() {
        return None;
    }
    let mut tpl = TopicPartitionList::new();
    for ((k, p), o) in positions {
        let _ = tpl.add_partition_offset(&topics[*k], *p, Offset::Offset(*o));
    }
    Some(tpl)
}
