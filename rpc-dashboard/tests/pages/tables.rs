//! Reading the service page's tables of figures (shards, rate limits,
//! priority lanes, group keys): a cell by its row and its class.

use super::Page;

/// What cell `num {class}` holds (its HTML) in the row that opens with
/// `row_start` (the `<tr ...>` tag, or an attribute of it): the page's
/// tables of figures (shards, rate limits, lanes, group keys) are read so.
pub fn row_cell(page: &Page, row_start: &str, class: &str) -> String {
    let row = page
        .body
        .split(row_start)
        .nth(1)
        .unwrap_or_else(|| panic!("no row {row_start:?} in {}", page.body));
    let row = row.split("</tr>").next().unwrap();
    row.split(&format!("class=\"num {class}\">"))
        .nth(1)
        .and_then(|cell| cell.split("</td>").next())
        .unwrap_or_else(|| panic!("no {class} in {row}"))
        .to_owned()
}

/// The figure of [`row_cell`]: its text up to any markup.
pub fn row_figure(page: &Page, row_start: &str, class: &str) -> String {
    let cell = row_cell(page, row_start, class);
    cell.split('<').next().unwrap_or_default().to_owned()
}
