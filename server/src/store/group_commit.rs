//! The group-commit writer both engines share: how a batch is gathered, committed, retried and
//! answered. An engine supplies only its transactions ([`Transactions`]) and its queue (a
//! thread on SQLite, where rusqlite is synchronous; a task on PostgreSQL).
//!
//! - **Gathering.** The writer takes every job waiting (up to the engine's batch size) and, if
//!   the queue runs dry, waits for more about as long as the last commit took (at most
//!   `max_linger`): under load many tiny commits (one WAL write + fsync each) become one, for a
//!   bounded latency cost; when idle the first job of a batch waits at most `max_linger`.
//! - **One transaction per batch.** Each job runs in its own savepoint ([`run_jobs`]): a job
//!   that fails is rolled back alone. The batch's messages go to the [`CommitSink`] in commit
//!   order, and only then is every job answered: an ack is never sent before its commit.
//! - **A failed batch** (the transaction itself broke: a deadlock against another node, a lost
//!   connection) is re-run one job per transaction, so one conflict does not fail the others.
//!   A job that loses a conflict (`Busy`) is tried up to [`RETRIES`] times with a growing pause,
//!   one that fails with an internal error twice (a fresh connection may fix it). Two jobs in
//!   a row failing alone with an internal error mean the database, not a job, is at fault: the
//!   rest of the batch fails with that error at once instead of waiting out every job (a dead
//!   disk or database must not stall the writer for minutes).

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::db::{Db, Job, WriteCtx, run_jobs};
use super::{CommitSink, Committed, StoreError, StoreResult};
use crate::metrics::Metrics;

/// Tries of a job, run alone, that keeps losing conflicts against other nodes.
pub const RETRIES: usize = 5;

/// The writer's side of an engine.
#[async_trait]
pub trait Transactions: Send {
    /// Runs `jobs` in one transaction (see [`transaction`]); the messages they wrote.
    async fn transaction(&mut self, jobs: &[Job]) -> StoreResult<Vec<Committed>>;
    /// Waits before a retry, on the engine's clock (a thread sleep or a timer).
    async fn pause(&mut self, pause: Duration);
}

/// `begin`, the jobs (each in its savepoint), COMMIT; ROLLBACK when any of it fails (also when
/// `begin` itself failed: harmless outside a transaction).
pub async fn transaction(
    db: &mut dyn Db,
    begin: &str,
    jobs: &[Job],
) -> StoreResult<Vec<Committed>> {
    let mut ctx = WriteCtx {
        db,
        emitted: Vec::new(),
    };
    let result = async {
        run_jobs(&mut ctx, begin, jobs).await?;
        ctx.db.batch("COMMIT").await
    }
    .await;
    if let Err(e) = result {
        let _ = ctx.db.batch("ROLLBACK").await;
        return Err(e);
    }
    Ok(ctx.emitted)
}

/// The policy and state of one engine's writer.
pub struct GroupCommit {
    sink: Arc<dyn CommitSink>,
    metrics: Arc<Metrics>,
    max_batch: usize,
    max_linger: Duration,
    last_commit: Duration,
}

impl GroupCommit {
    pub fn new(
        sink: Arc<dyn CommitSink>,
        metrics: Arc<Metrics>,
        max_batch: usize,
        max_linger: Duration,
    ) -> Self {
        Self {
            sink,
            metrics,
            max_batch,
            max_linger,
            last_commit: Duration::ZERO,
        }
    }

    /// Most jobs in one transaction.
    pub fn max_batch(&self) -> usize {
        self.max_batch
    }

    /// Until when to wait for more jobs after the first of a batch arrived now.
    pub fn linger_until(&self) -> Instant {
        Instant::now() + self.last_commit.min(self.max_linger)
    }

    /// Commits a gathered batch and answers each of its jobs (the batch is left empty).
    pub async fn commit(&mut self, conn: &mut impl Transactions, batch: &mut Vec<Job>) {
        let started = Instant::now();
        let result = conn.transaction(batch).await;
        self.last_commit = started.elapsed();
        self.metrics.observe_batch(batch.len(), self.last_commit);
        let error = match result {
            Ok(emitted) => {
                if !emitted.is_empty() {
                    self.sink.committed(&emitted);
                }
                for job in batch.drain(..) {
                    (job.complete)(Ok(()));
                }
                return;
            }
            Err(error) => error,
        };
        tracing::warn!(%error, jobs = batch.len(), "Write batch failed; running its jobs one by one");
        let mut internal_in_a_row = 0;
        let mut jobs = batch.drain(..);
        while let Some(job) = jobs.next() {
            let jobs_alone = [job];
            let mut result = Err(StoreError::internal("not run"));
            for attempt in 0..RETRIES {
                result = conn.transaction(&jobs_alone).await;
                let again = match &result {
                    Err(StoreError::Busy(_)) => attempt + 1 < RETRIES,
                    // A connection lost with the batch: one more try on a fresh one.
                    Err(StoreError::Internal(_)) => attempt == 0,
                    _ => false,
                };
                if !again {
                    break;
                }
                conn.pause(Duration::from_millis(5 << attempt)).await;
            }
            let [job] = jobs_alone;
            match result {
                Ok(emitted) => {
                    internal_in_a_row = 0;
                    if !emitted.is_empty() {
                        self.sink.committed(&emitted);
                    }
                    (job.complete)(Ok(()));
                }
                Err(e) => {
                    internal_in_a_row = match e {
                        StoreError::Internal(_) => internal_in_a_row + 1,
                        _ => 0,
                    };
                    (job.complete)(Err(e.clone()));
                    if internal_in_a_row >= 2 {
                        tracing::error!(error = %e, "Writes keep failing; failing the rest of the batch");
                        for job in jobs.by_ref() {
                            (job.complete)(Err(e.clone()));
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::Mutex;

    use super::*;

    /// Transactions that answer from a script: `Ok(n)` commits and emits n messages, `Err`
    /// fails the transaction. Records the size of each transaction and each pause.
    struct Scripted {
        script: VecDeque<StoreResult<usize>>,
        sizes: Vec<usize>,
        pauses: Vec<Duration>,
    }

    #[async_trait]
    impl Transactions for Scripted {
        async fn transaction(&mut self, jobs: &[Job]) -> StoreResult<Vec<Committed>> {
            self.sizes.push(jobs.len());
            let n = self.script.pop_front().expect("a scripted answer")?;
            Ok((0..n)
                .map(|i| Committed {
                    message: wsmschat::v1::Message {
                        seq: i as u64 + 1,
                        ..Default::default()
                    },
                    visitor_id: String::new(),
                    origin_stream: None,
                    webhooks: false,
                })
                .collect())
        }

        async fn pause(&mut self, pause: Duration) {
            self.pauses.push(pause);
        }
    }

    #[derive(Default)]
    struct Sink(Mutex<Vec<u64>>);

    impl CommitSink for Sink {
        fn committed(&self, messages: &[Committed]) {
            let mut seen = self.0.lock().unwrap();
            seen.extend(messages.iter().map(|m| m.message.seq));
        }
    }

    /// Each job's answer: (its index in the batch, Ok or the error's text).
    type Answer = (usize, Result<(), String>);
    type Answers = Arc<Mutex<Vec<Answer>>>;

    fn jobs(n: usize, answers: &Answers) -> Vec<Job> {
        (0..n)
            .map(|i| {
                let answers = answers.clone();
                Job {
                    run: Box::new(|_| Box::pin(async { true })),
                    complete: Box::new(move |r| {
                        answers
                            .lock()
                            .unwrap()
                            .push((i, r.map_err(|e| e.to_string())));
                    }),
                }
            })
            .collect()
    }

    fn run(script: Vec<StoreResult<usize>>, batch: usize) -> (Scripted, Vec<Answer>, Vec<u64>) {
        let sink = Arc::new(Sink::default());
        let mut commits =
            GroupCommit::new(sink.clone(), Arc::new(Metrics::new()), 1024, Duration::ZERO);
        let mut conn = Scripted {
            script: script.into(),
            sizes: Vec::new(),
            pauses: Vec::new(),
        };
        let answers = Answers::default();
        let mut batch = jobs(batch, &answers);
        futures_executor::block_on(commits.commit(&mut conn, &mut batch));
        assert!(batch.is_empty(), "every job leaves the batch");
        let answers = std::mem::take(&mut *answers.lock().unwrap());
        let seen = std::mem::take(&mut *sink.0.lock().unwrap());
        (conn, answers, seen)
    }

    #[test]
    fn a_batch_commits_once_then_fans_out_and_answers_every_job() {
        let (conn, answers, seen) = run(vec![Ok(3)], 3);
        assert_eq!(conn.sizes, [3]);
        assert_eq!(seen, [1, 2, 3]);
        assert_eq!(answers.len(), 3);
        assert!(answers.iter().all(|(_, r)| r.is_ok()));
    }

    #[test]
    fn a_lost_conflict_reruns_the_jobs_alone_and_retries_the_loser() {
        let busy = || Err(StoreError::Busy("deadlock detected".into()));
        // The batch deadlocks; job 0 commits alone, job 1 loses twice more, then commits.
        let (conn, answers, seen) = run(vec![busy(), Ok(1), busy(), busy(), Ok(1)], 2);
        assert_eq!(conn.sizes, [2, 1, 1, 1, 1]);
        assert_eq!(
            conn.pauses,
            [Duration::from_millis(5), Duration::from_millis(10)]
        );
        assert_eq!(seen, [1, 1]);
        assert_eq!(
            answers
                .iter()
                .map(|(i, r)| (*i, r.is_ok()))
                .collect::<Vec<_>>(),
            [(0, true), (1, true)]
        );
    }

    #[test]
    fn a_job_that_keeps_losing_fails_alone_after_the_retries() {
        let busy = || Err(StoreError::Busy("deadlock detected".into()));
        let mut script = vec![busy()];
        script.extend((0..RETRIES).map(|_| busy()));
        script.push(Ok(1));
        let (conn, answers, _) = run(script, 2);
        assert_eq!(conn.sizes.len(), 1 + RETRIES + 1);
        assert!(answers[0].1.as_ref().unwrap_err().contains("deadlock"));
        assert_eq!(answers[1], (1, Ok(())));
    }

    #[test]
    fn a_dead_database_fails_the_batch_fast_instead_of_job_by_job() {
        let down = || Err(StoreError::internal("database connection: refused"));
        // The batch, then job 0 twice and job 1 twice: the other 998 jobs are not tried.
        let (conn, answers, seen) = run((0..5).map(|_| down()).collect(), 1000);
        assert_eq!(conn.sizes, [1000, 1, 1, 1, 1]);
        assert!(seen.is_empty());
        assert_eq!(answers.len(), 1000, "every job is answered");
        assert!(
            answers
                .iter()
                .all(|(_, r)| r.as_ref().unwrap_err().contains("refused"))
        );
    }

    #[test]
    fn one_job_breaking_the_batch_does_not_fail_the_others() {
        // The batch fails (job 1 broke the transaction); alone, job 1 fails twice, the others
        // commit: an error in a row resets on a success.
        let broken = || Err(StoreError::internal("savepoint: bad statement"));
        let (conn, answers, seen) = run(vec![broken(), Ok(1), broken(), broken(), Ok(1), Ok(1)], 4);
        assert_eq!(conn.sizes, [4, 1, 1, 1, 1, 1]);
        assert_eq!(seen, [1, 1, 1]);
        let ok: Vec<bool> = answers.iter().map(|(_, r)| r.is_ok()).collect();
        assert_eq!(ok, [true, false, true, true]);
    }
}
