//! `jobs_queues`: the queues background-job workers run, each with its concurrency.

/// Jobs one worker thread runs at once for a queue listed without a concurrency.
pub const DEFAULT_QUEUE_CONCURRENCY: usize = 10;

/// One queue workers run, and how many of its jobs each worker thread runs at once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobQueue {
    /// The queue's name (a job type's `QUEUE`).
    pub name: String,
    /// Jobs of this queue running at once on each worker thread.
    pub concurrency: usize,
}

impl JobQueue {
    /// Parses `name` or `name:concurrency` entries separated by commas (`default:20,mail:2`).
    ///
    /// # Errors
    /// Which entry is wrong and why.
    pub fn parse_list(text: &str) -> Result<Vec<JobQueue>, String> {
        let mut queues: Vec<JobQueue> = Vec::new();
        for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (name, concurrency) = match entry.split_once(':') {
                Some((name, n)) => {
                    let n: usize = n.trim().parse().map_err(|_| {
                        format!("queue `{entry}`: the concurrency must be a whole number")
                    })?;
                    (name.trim(), n)
                }
                None => (entry, DEFAULT_QUEUE_CONCURRENCY),
            };
            if name.is_empty() || concurrency == 0 || concurrency > 100_000 {
                return Err(format!(
                    "queue `{entry}`: a name and a concurrency of 1..=100000 are needed"
                ));
            }
            if queues.iter().any(|q| q.name == name) {
                return Err(format!("queue `{name}` is listed twice"));
            }
            queues.push(JobQueue {
                name: name.to_owned(),
                concurrency,
            });
        }
        if queues.is_empty() {
            return Err("no queue to run".to_string());
        }
        Ok(queues)
    }

    /// The list as `jobs_queues` writes it.
    pub fn render_list(queues: &[JobQueue]) -> String {
        queues
            .iter()
            .map(|q| format!("{}:{}", q.name, q.concurrency))
            .collect::<Vec<_>>()
            .join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_lists_parse_and_name_what_is_wrong() {
        let q = JobQueue::parse_list("default:20, mail:2,reports").expect("parses");
        assert_eq!(
            q,
            vec![
                JobQueue {
                    name: "default".into(),
                    concurrency: 20
                },
                JobQueue {
                    name: "mail".into(),
                    concurrency: 2
                },
                JobQueue {
                    name: "reports".into(),
                    concurrency: DEFAULT_QUEUE_CONCURRENCY
                },
            ]
        );
        assert_eq!(JobQueue::render_list(&q), "default:20,mail:2,reports:10");
        for (bad, says) in [
            ("mail:x", "`mail:x`"),
            ("mail:0", "`mail:0`"),
            (":3", "`:3`"),
            ("a,a", "`a` is listed twice"),
            (" , ", "no queue"),
        ] {
            let e = JobQueue::parse_list(bad).expect_err(bad);
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}
