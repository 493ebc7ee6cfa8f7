//! Grids of labelled greyscale or RGB images (e.g. original vs reconstruction).

use crate::error::{ReportError, Result};
use crate::text::{self, Canvas, HAlign, Label, Rgb, VAlign};

/// One labelled row of images. Each image holds `img_h * img_w * channels`
/// values, row-major and channels-last (one grey value, or R, G, B, per pixel),
/// nominally in `[0, 1]` (values outside are clamped, NaN is drawn as 0).
#[derive(Debug, Clone, PartialEq)]
pub struct GridRow<'a> {
    /// Text left of the row.
    pub label: String,
    /// The row's images, left to right.
    pub images: Vec<&'a [f32]>,
}

impl<'a> GridRow<'a> {
    /// A row labelled `label` holding `images`.
    pub fn new(label: impl Into<String>, images: Vec<&'a [f32]>) -> Self {
        Self { label: label.into(), images }
    }
}

/// Rows of images with their labels on the left, on a white page.
///
/// Greyscale images use the natural MNIST look (value 1 = white digit on black,
/// value 0 = black), RGB images their colours; both are upscaled by `scale` with nearest neighbour and
/// separated by 2px gaps; labels and the optional title are dark text.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageGrid<'a> {
    /// The rows, top to bottom.
    pub rows: Vec<GridRow<'a>>,
    /// Height of every image in pixels.
    pub img_h: usize,
    /// Width of every image in pixels.
    pub img_w: usize,
    /// Values per pixel: 1 (grey) or 3 (RGB).
    pub channels: usize,
    /// Nearest-neighbour upscaling factor (>= 1), 3 by default.
    pub scale: u32,
    /// Heading above the grid, if any.
    pub title: Option<String>,
}

pub(crate) const PAD: u32 = 8;
pub(crate) const GAP: u32 = 2;
const LABEL_GAP: u32 = 10;
const TITLE_PX: f32 = 20.0;
const TEXT_COLOR: Rgb = [30, 30, 30];

/// Pixel geometry of a grid.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Layout {
    pub width: u32,
    pub height: u32,
    pub label_w: u32,
    pub title_h: u32,
    pub cell_w: u32,
    pub cell_h: u32,
    pub label_px: f32,
}

impl Layout {
    /// Top-left pixel of image `col` in row `row`.
    pub fn origin(&self, row: usize, col: usize) -> (u32, u32) {
        (PAD + self.label_w + col as u32 * (self.cell_w + GAP), PAD + self.title_h + row as u32 * (self.cell_h + GAP))
    }
}

impl<'a> ImageGrid<'a> {
    /// An empty grid for `img_h` x `img_w` greyscale images, scale 3, no title.
    pub fn new(img_h: usize, img_w: usize) -> Self {
        Self { rows: Vec::new(), img_h, img_w, channels: 1, scale: 3, title: None }
    }

    /// Set the values per pixel: 1 (grey) or 3 (RGB) (builder style).
    pub fn with_channels(mut self, channels: usize) -> Self {
        self.channels = channels;
        self
    }

    /// Append a row (builder style).
    pub fn with_row(mut self, label: impl Into<String>, images: Vec<&'a [f32]>) -> Self {
        self.rows.push(GridRow::new(label, images));
        self
    }

    /// Set the title (builder style).
    pub fn with_title(mut self, title: impl Into<String>) -> Self {
        self.title = Some(title.into());
        self
    }

    /// Render to PNG bytes (RGB8).
    pub fn render_png(&self) -> Result<Vec<u8>> {
        self.validate()?;
        let lay = self.layout()?;
        let (w, h) = (lay.width, lay.height);
        let mut buf = vec![255u8; w as usize * h as usize * 3];
        let mut canvas = Canvas { buf: &mut buf, width: w, height: h };
        if let Some(title) = self.title.as_deref().filter(|t| !t.is_empty()) {
            let label = Label { text: title, px: TITLE_PX, color: TEXT_COLOR };
            text::draw(&mut canvas, &label, (w as f32 / 2.0, PAD as f32), HAlign::Center, VAlign::Top, false)?;
        }
        for (r, row) in self.rows.iter().enumerate() {
            if row.label.is_empty() {
                continue;
            }
            let (_, y0) = lay.origin(r, 0);
            let label = Label { text: &row.label, px: lay.label_px, color: TEXT_COLOR };
            let at = (PAD as f32, y0 as f32 + lay.cell_h as f32 / 2.0);
            text::draw(&mut canvas, &label, at, HAlign::Left, VAlign::Middle, false)?;
        }
        for (r, row) in self.rows.iter().enumerate() {
            for (c, img) in row.images.iter().enumerate() {
                self.blit(&mut buf, w, lay.origin(r, c), img);
            }
        }
        crate::encode_rgb_png(&buf, w, h)
    }

    fn validate(&self) -> Result<()> {
        if self.img_h == 0 || self.img_w == 0 {
            return Err(ReportError::BadInput(format!("image size {}x{} must be non-zero", self.img_h, self.img_w)));
        }
        if self.scale == 0 {
            return Err(ReportError::BadInput("scale must be >= 1".into()));
        }
        if self.channels != 1 && self.channels != 3 {
            return Err(ReportError::BadInput(format!("{} channels per pixel (1 or 3)", self.channels)));
        }
        if self.rows.iter().all(|r| r.images.is_empty()) {
            return Err(ReportError::BadInput("image grid has no images".into()));
        }
        let want = self.img_h.checked_mul(self.img_w).and_then(|p| p.checked_mul(self.channels));
        for (r, row) in self.rows.iter().enumerate() {
            for (i, img) in row.images.iter().enumerate() {
                if Some(img.len()) != want {
                    return Err(ReportError::BadInput(format!(
                        "row {r} ('{}') image {i}: {} values, expected {}x{}x{}",
                        row.label,
                        img.len(),
                        self.img_h,
                        self.img_w,
                        self.channels
                    )));
                }
            }
        }
        Ok(())
    }

    /// Compute the geometry (label widths need the font).
    pub(crate) fn layout(&self) -> Result<Layout> {
        let too_big = || ReportError::BadInput(format!("image grid larger than {0}x{0} pixels", crate::MAX_SIDE));
        let side = |n: usize, cell: u64| -> Option<u64> {
            let n = n as u64;
            n.checked_mul(cell)?.checked_add(n.saturating_sub(1) * GAP as u64)
        };
        let cell_w = (self.img_w as u64).checked_mul(self.scale as u64).ok_or_else(too_big)?;
        let cell_h = (self.img_h as u64).checked_mul(self.scale as u64).ok_or_else(too_big)?;
        if cell_w > crate::MAX_SIDE as u64 || cell_h > crate::MAX_SIDE as u64 {
            return Err(too_big());
        }
        let (cell_w, cell_h) = (cell_w as u32, cell_h as u32);

        let label_px = (cell_h as f32 * 0.6).clamp(12.0, 17.0);
        let mut label_w = 0;
        for row in self.rows.iter().filter(|r| !r.label.is_empty()) {
            let tw = text::measure(&row.label, label_px)?.width.ceil() as u32;
            label_w = label_w.max(tw + LABEL_GAP);
        }
        let title_h = match self.title.as_deref() {
            Some(t) if !t.is_empty() => text::measure(t, TITLE_PX)?.line_height().ceil() as u32 + 8,
            _ => 0,
        };
        let ncols = self.rows.iter().map(|r| r.images.len()).max().unwrap_or(0);
        let grid_w = side(ncols, cell_w as u64).ok_or_else(too_big)?;
        let grid_h = side(self.rows.len(), cell_h as u64).ok_or_else(too_big)?;
        let width = grid_w + u64::from(2 * PAD + label_w);
        let height = grid_h + u64::from(2 * PAD + title_h);
        if width > crate::MAX_SIDE as u64 || height > crate::MAX_SIDE as u64 {
            return Err(too_big());
        }
        Ok(Layout { width: width as u32, height: height as u32, label_w, title_h, cell_w, cell_h, label_px })
    }

    /// Copy one image into the RGB buffer at `(x0, y0)`, upscaled.
    fn blit(&self, buf: &mut [u8], stride_px: u32, (x0, y0): (u32, u32), img: &[f32]) {
        let s = self.scale as usize;
        let stride = stride_px as usize * 3;
        let c = self.channels;
        for (py, line) in img.chunks_exact(self.img_w * c).enumerate() {
            for (px, v) in line.chunks_exact(c).enumerate() {
                let rgb = if c == 1 { [grey(v[0]); 3] } else { [grey(v[0]), grey(v[1]), grey(v[2])] };
                for dy in 0..s {
                    let y = y0 as usize + py * s + dy;
                    let start = y * stride + (x0 as usize + px * s) * 3;
                    for p in buf[start..start + 3 * s].chunks_exact_mut(3) {
                        p.copy_from_slice(&rgb);
                    }
                }
            }
        }
    }
}

/// Map a value in `[0, 1]` to an 8-bit level (clamped; NaN -> 0).
pub(crate) fn grey(v: f32) -> u8 {
    if v.is_nan() {
        0
    } else {
        (v.clamp(0.0, 1.0) * 255.0).round() as u8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grey_levels() {
        assert_eq!(grey(0.0), 0);
        assert_eq!(grey(1.0), 255);
        assert_eq!(grey(0.5), 128);
        assert_eq!(grey(-3.0), 0);
        assert_eq!(grey(7.0), 255);
        assert_eq!(grey(f32::NAN), 0);
    }

    #[test]
    fn rgb_images_keep_their_colours() {
        // one 2x2 RGB image: red, green / blue, a mix
        let img: Vec<f32> = vec![1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.2, 0.4, 0.6];
        let grid = ImageGrid::new(2, 2).with_channels(3).with_row("x", vec![&img]);
        let png = grid.render_png().unwrap();
        let lay = grid.layout().unwrap();
        let out = image::load_from_memory(&png).unwrap().to_rgb8();
        let (x0, y0) = lay.origin(0, 0);
        let at = |py: u32, px: u32| out.get_pixel(x0 + px * 3 + 1, y0 + py * 3 + 1).0;
        assert_eq!(at(0, 0), [255, 0, 0]);
        assert_eq!(at(0, 1), [0, 255, 0]);
        assert_eq!(at(1, 0), [0, 0, 255]);
        assert_eq!(at(1, 1), [grey(0.2), grey(0.4), grey(0.6)]);
        // a grey-sized image in an RGB grid, and a channel count other than 1 or 3, are refused
        let grey_img = vec![0.5f32; 4];
        assert!(ImageGrid::new(2, 2).with_channels(3).with_row("x", vec![&grey_img]).render_png().is_err());
        assert!(ImageGrid::new(2, 2).with_channels(2).with_row("x", vec![&img[..8]]).render_png().is_err());
    }

    #[test]
    fn images_land_at_layout_offsets() {
        // Two rows of 2x3 images with distinct constant-ish values.
        let a: Vec<f32> = vec![0.0, 0.2, 0.4, 0.6, 0.8, 1.0];
        let b: Vec<f32> = vec![1.0; 6];
        let c: Vec<f32> = vec![-1.0, 2.0, 0.5, 0.5, 0.5, 0.5];
        let grid = ImageGrid::new(2, 3)
            .with_title("t")
            .with_row("original", vec![&a, &b])
            .with_row("reconstruction", vec![&c]);
        let png = grid.render_png().unwrap();
        let lay = grid.layout().unwrap();
        let img = image::load_from_memory(&png).unwrap().to_rgb8();
        assert_eq!((img.width(), img.height()), (lay.width, lay.height));
        assert_eq!((lay.cell_w, lay.cell_h), (9, 6));
        let s = 3;
        for (r, col, data) in [(0, 0, &a), (0, 1, &b), (1, 0, &c)] {
            let (x0, y0) = lay.origin(r, col);
            for py in 0..2 {
                for px in 0..3 {
                    let want = grey(data[py * 3 + px]);
                    for d in 0..s {
                        let p = img.get_pixel(x0 + (px * s + d) as u32, y0 + (py * s + d) as u32);
                        assert_eq!(p.0, [want; 3], "row {r} col {col} pixel ({py},{px})");
                    }
                }
            }
            // Gap pixel to the right of each image stays white.
            let gx = x0 + lay.cell_w;
            assert_eq!(img.get_pixel(gx, y0).0, [255; 3]);
        }
        // The missing second image of row 1 leaves white page.
        let (x0, y0) = lay.origin(1, 1);
        assert_eq!(img.get_pixel(x0 + 1, y0 + 1).0, [255; 3]);
        // Labels are drawn: some dark pixels left of the images in each row.
        for r in 0..2 {
            let (x_img, y0) = lay.origin(r, 0);
            let dark = (y0..y0 + lay.cell_h)
                .flat_map(|y| (0..x_img).map(move |x| (x, y)))
                .filter(|&(x, y)| img.get_pixel(x, y).0[0] < 128)
                .count();
            assert!(dark > 5, "row {r} label not drawn ({dark} dark pixels)");
        }
        // Title drawn above the first row.
        let (_, top) = lay.origin(0, 0);
        let dark = (0..top)
            .flat_map(|y| (0..lay.width).map(move |x| (x, y)))
            .filter(|&(x, y)| img.get_pixel(x, y).0[0] < 128)
            .count();
        assert!(dark > 0, "title not drawn");
    }
}
