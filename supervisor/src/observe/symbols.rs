//! A native plugin's crash frames as lines for people: the plugin's own
//! frames symbolized by binutils' `addr2line` from its library's debug
//! info (`FUNCTION at FILE:LINE (LIB+0xOFFSET)`), the others as
//! addresses. Without `addr2line` (or debug info) a plugin frame is
//! `LIB+0xOFFSET`, which `addr2line -f -C -e LIB 0xOFFSET` resolves later.

use corral_plugin_api::wire::CrashFrames;
use std::path::Path;
use std::process::Command;

/// One line per frame, innermost first.
pub(crate) fn backtrace(frames: &CrashFrames, library: &Path) -> Vec<String> {
    let name = library
        .file_name()
        .map_or_else(|| "plugin".into(), |name| name.to_string_lossy());
    // A return address points after its call: look one byte back.
    let offsets: Vec<Option<u64>> = frames
        .frames
        .iter()
        .map(|&frame| {
            frames
                .plugin
                .contains(&frame)
                .then(|| frame.wrapping_sub(frames.bias).saturating_sub(1))
        })
        .collect();
    let wanted: Vec<u64> = offsets.iter().flatten().copied().collect();
    let mut names = symbolize(library, &wanted).into_iter();
    let mut lines = Vec::new();
    let mut outside: Option<(usize, usize)> = None;
    for (index, (frame, offset)) in frames.frames.iter().zip(&offsets).enumerate() {
        let Some(offset) = offset else {
            // Runs of frames outside the plugin (the worker, libc) are one
            // line each.
            outside = Some(outside.map_or((index, index), |(first, _)| (first, index)));
            if index + 1 == frames.frames.len() || offsets[index + 1].is_some() {
                let (first, last) = outside.take().unwrap_or((index, index));
                lines.push(if first == last {
                    format!("#{index} {frame:#x} (outside the plugin)")
                } else {
                    format!("#{first}-#{last} outside the plugin (the worker, libc)")
                });
            }
            continue;
        };
        lines.push(match names.next().flatten() {
            Some(symbol) => format!("#{index} {symbol} ({name}+{offset:#x})"),
            None => format!("#{index} {name}+{offset:#x}"),
        });
    }
    lines
}

/// `addr2line`'s `FUNCTION at FILE:LINE` for each offset, `None` where it
/// knows nothing (or is not installed).
fn symbolize(library: &Path, offsets: &[u64]) -> Vec<Option<String>> {
    if offsets.is_empty() {
        return Vec::new();
    }
    let output = Command::new("addr2line")
        .args(["-f", "-C", "-i", "-p", "-e"])
        .arg(library)
        .args(offsets.iter().map(|offset| format!("{offset:#x}")))
        .output();
    let Some(output) = output.ok().filter(|output| output.status.success()) else {
        return vec![None; offsets.len()];
    };
    let text = String::from_utf8_lossy(&output.stdout);
    // One line per offset, then ` (inlined by) …` lines for the functions
    // it was inlined into: joined to it.
    let mut lines: Vec<Option<String>> = Vec::new();
    for line in text.lines() {
        match (
            line.trim_start().strip_prefix("(inlined by) "),
            lines.last_mut(),
        ) {
            (Some(caller), Some(Some(last))) => {
                last.push_str(", inlined into ");
                last.push_str(caller.trim());
            }
            (Some(_), _) => {}
            (None, _) => lines.push((!line.starts_with("??")).then(|| line.trim().to_owned())),
        }
    }
    lines.resize(offsets.len(), None);
    lines
}
