//! The benchmarks' last results, as the bench scripts keep them
//! (`var/bench/<script>-latest.md`, written by `bench/lib.sh`'s
//! `keep_summary`): the checklist's 性能分析工具 and the dashboard show
//! when each ran last and its PASS/FAIL lines, so an operator sees the
//! figures behind the speed goals without digging for a temp directory.

use std::path::Path;

use seckill_api::BenchResult;

use crate::clock::from_ms;

/// Each kept summary in `dir`, newest first; none if the directory is missing.
pub fn latest(dir: &Path) -> Vec<BenchResult> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut out: Vec<BenchResult> = entries
        .flatten()
        .filter_map(|entry| {
            let file = entry.file_name().into_string().ok()?;
            let name = file.strip_suffix("-latest.md")?.to_owned();
            let modified = entry.metadata().ok()?.modified().ok()?;
            let at_ms = modified.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis() as i64;
            let summary = std::fs::read_to_string(entry.path()).ok()?;
            let verdicts =
                summary.lines().filter(|l| l.starts_with("PASS") || l.starts_with("FAIL")).map(str::to_owned).collect();
            Some(BenchResult { name, ran_at: from_ms(at_ms), verdicts, summary })
        })
        .collect();
    out.sort_by_key(|r| std::cmp::Reverse(r.ran_at));
    out
}
