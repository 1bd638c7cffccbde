//! Apply progress: `web[0]: Creating...`, `Still creating... [10s elapsed]`,
//! `Creation complete after 2s [id=...]`. On a terminal, the lines scroll above a progress
//! bar; otherwise they are plain lines (for CI logs).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use planner::{Event, Observer, Phase};
use std::time::Duration;

pub struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    pub fn new(total: usize, tty: bool) -> Progress {
        let bar = tty.then(|| {
            let bar = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
            bar.set_style(ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}").unwrap_or_else(|_| ProgressStyle::default_bar()));
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Progress { bar }
    }

    fn line(&self, text: String) {
        match &self.bar {
            Some(b) => b.println(text),
            None => println!("{text}"),
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

fn secs(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 60 {
        format!("{}m{}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

impl Observer for Progress {
    fn event(&self, event: Event) {
        match event {
            Event::Started { address, phase } => self.line(format!("{address}: {}...", phase.verb().0)),
            Event::Still { address, phase, elapsed, detail } => {
                let detail = detail.map(|d| format!(" {d}")).unwrap_or_default();
                self.line(format!("{address}: Still {}... [{} elapsed]{detail}", phase.verb().0.to_lowercase(), secs(elapsed)))
            }
            Event::Done { address, phase, elapsed, id } => {
                if let Some(b) = &self.bar {
                    b.inc(1);
                }
                let id = match (phase, id) {
                    (Phase::Delete, _) | (_, None) => String::new(),
                    (_, Some(id)) => format!(" [id={id}]"),
                };
                self.line(format!("{address}: {} complete after {}{id}", phase.verb().1, secs(elapsed)))
            }
            Event::Failed { address, phase, message } => {
                if let Some(b) = &self.bar {
                    b.inc(1);
                }
                self.line(format!("{address}: {} failed: {message}", phase.verb().1))
            }
            Event::Skipped { address, phase, because } => {
                if let Some(b) = &self.bar {
                    b.inc(1);
                }
                let what = match phase {
                    Phase::Create => "create",
                    Phase::Update => "update",
                    Phase::Delete => "destroy",
                };
                self.line(format!("{address}: {what} skipped because {because} failed"))
            }
        }
    }
}
