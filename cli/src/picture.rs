//! `vhd map --picture`: the virtual disk drawn as a block map on the terminal, one cell per
//! block (or group of blocks), shaded by the level of the chain that holds its data.

use crate::size::human_size;
use crate::terminal::safe;
use crate::{CliError, Io};
use vhd_core::ops::allocated_ranges_iter;
use vhd_core::{Image, VirtualDisk};

/// At most this many rows of cells: a picture, not a listing.
pub const MAX_ROWS: u64 = 16;

/// The cell width assumed when stdout is not a terminal and `COLUMNS` does not say.
const DEFAULT_COLUMNS: u64 = 64;

/// The unit a cell is made of for a fixed image, which has no blocks.
const FIXED_UNIT: u64 = 2 << 20;

/// Plain characters, by level (0 the image itself); deeper levels take the last.
const PLAIN: [char; 6] = ['#', '%', '+', '=', '*', 'o'];
/// A cell no level holds data for (it reads as zeros), in plain characters.
const PLAIN_ZEROS: char = '.';
/// ANSI colours by level (green, yellow, blue, magenta, cyan, red); deeper take the last.
const COLOURS: [u8; 6] = [32, 33, 34, 35, 36, 31];
/// The colour character and the zeros' (grey).
const SOLID: char = '█';
const COLOUR_ZEROS: char = '·';

/// How a picture is laid out: the bytes a cell stands for, how many cells, how many a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Layout {
    cell_bytes: u64,
    cells: u64,
    columns: u64,
}

impl Layout {
    /// Cells of whole `unit`s (blocks), as few units a cell as fit `columns` × [`MAX_ROWS`].
    fn new(size: u64, unit: u64, columns: u64) -> Layout {
        let units = size.div_ceil(unit).max(1);
        let units_per_cell = units.div_ceil(columns * MAX_ROWS).max(1);
        let cell_bytes = unit * units_per_cell;
        Layout {
            cell_bytes,
            cells: size.div_ceil(cell_bytes).max(1),
            columns,
        }
    }
}

/// Draws `image` on `io.stdout`: the cells, then the legend.
pub fn draw(image: &Image, io: &mut Io) -> Result<(), CliError> {
    let unit = image
        .header()
        .map_or(FIXED_UNIT, |h| u64::from(h.block_size));
    let layout = Layout::new(image.size(), unit, columns(io));
    // The nearest level holding any byte of each cell (`None`: zeros).
    let mut levels: Vec<Option<usize>> = vec![None; layout.cells as usize];
    for range in allocated_ranges_iter(image) {
        let range = range?;
        if range.length == 0 {
            continue;
        }
        let first = range.offset / layout.cell_bytes;
        let last = (range.offset + range.length - 1) / layout.cell_bytes;
        for cell in &mut levels[first as usize..=(last as usize).min(layout.cells as usize - 1)] {
            *cell = Some(cell.map_or(range.depth, |level| level.min(range.depth)));
        }
    }
    let colour = io.stdout_is_terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let chain: Vec<String> = image
        .chain()
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let text = render(&levels, &layout, &chain, image.size(), unit, colour);
    io.stdout.write_all(text.as_bytes())?;
    Ok(())
}

/// The width of the picture: the terminal's (when stdout is one), else `COLUMNS`, else
/// [`DEFAULT_COLUMNS`]; within 16..=256.
fn columns(io: &Io) -> u64 {
    let terminal = io
        .stdout_is_terminal
        .then(|| console::Term::stdout().size_checked())
        .flatten()
        .map(|(_, columns)| u64::from(columns));
    let environment = std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok());
    terminal
        .or(environment)
        .unwrap_or(DEFAULT_COLUMNS)
        .clamp(16, 256)
}

/// The picture and its legend, as text.
fn render(
    levels: &[Option<usize>],
    layout: &Layout,
    chain: &[String],
    size: u64,
    unit: u64,
    colour: bool,
) -> String {
    let mut out = String::new();
    for row in levels.chunks(layout.columns as usize) {
        for level in row {
            out.push_str(&cell(*level, colour));
        }
        out.push('\n');
    }
    let units = layout.cell_bytes / unit;
    let what = if units == 1 { "block" } else { "blocks" };
    out.push_str(&format!(
        "\nEach cell is {} ({units} {what} of {}); the disk is {} in {} cells. A cell is shaded by the nearest level of the chain that holds any of its bytes:\n",
        human_size(layout.cell_bytes),
        human_size(unit),
        human_size(size),
        layout.cells
    ));
    for (level, path) in chain.iter().enumerate() {
        let count = levels.iter().filter(|l| **l == Some(level)).count();
        out.push_str(&format!(
            "  {} level {level}: {} ({}), {count} cells\n",
            cell(Some(level), colour),
            safe(path),
            level_name(level)
        ));
    }
    let zeros = levels.iter().filter(|l| l.is_none()).count();
    out.push_str(&format!(
        "  {} no data at any level (reads as zeros), {zeros} cells\n",
        cell(None, colour)
    ));
    out
}

/// One cell: a coloured block, or a plain character.
fn cell(level: Option<usize>, colour: bool) -> String {
    let pick = |n: usize| n.min(PLAIN.len() - 1);
    match (level, colour) {
        (Some(n), true) => format!("\x1b[{}m{SOLID}\x1b[0m", COLOURS[pick(n)]),
        (None, true) => format!("\x1b[90m{COLOUR_ZEROS}\x1b[0m"),
        (Some(n), false) => PLAIN[pick(n)].to_string(),
        (None, false) => PLAIN_ZEROS.to_string(),
    }
}

/// What level `n` of the chain is to the image.
fn level_name(n: usize) -> String {
    match n {
        0 => "the image".into(),
        1 => "its parent".into(),
        2 => "its grandparent".into(),
        n => format!("{} levels below", n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cell_is_whole_blocks_and_the_picture_fits() {
        // 64 blocks in 64 columns: one block a cell, one row.
        let layout = Layout::new(128 << 20, 2 << 20, 64);
        assert_eq!((layout.cell_bytes, layout.cells), (2 << 20, 64));
        // 2 TiB of 2 MiB blocks in 80 columns: at most 16 rows of whole blocks.
        let layout = Layout::new(2 << 40, 2 << 20, 80);
        assert_eq!(layout.cell_bytes % (2 << 20), 0);
        assert!(layout.cells <= 80 * MAX_ROWS, "{layout:?}");
        assert!(layout.cells * layout.cell_bytes >= 2 << 40);
        // A disk smaller than a block: one cell.
        assert_eq!(Layout::new(512, 2 << 20, 80).cells, 1);
    }

    #[test]
    fn plain_and_coloured_cells() {
        assert_eq!(cell(Some(0), false), "#");
        assert_eq!(cell(Some(9), false), "o");
        assert_eq!(cell(None, false), ".");
        assert_eq!(cell(Some(1), true), "\x1b[33m█\x1b[0m");
    }
}
