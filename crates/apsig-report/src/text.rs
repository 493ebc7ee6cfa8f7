//! A small RGB8 canvas with anti-aliased text drawn straight from the
//! embedded font with `ab_glyph` (plotters' own ab_glyph text path ignores
//! glyph side bearings and rounds baselines, which looks ragged at small
//! sizes).

use ab_glyph::{point, Font, GlyphId, PxScale, ScaleFont};

use crate::error::Result;
use crate::font::font;

pub(crate) type Rgb = [u8; 3];

/// A borrowed, tightly packed RGB8 pixel buffer.
pub(crate) struct Canvas<'b> {
    pub buf: &'b mut [u8],
    pub width: u32,
    pub height: u32,
}

impl Canvas<'_> {
    /// Blend `color` with coverage `alpha` (0..=1) into pixel (x, y);
    /// pixels outside the canvas are ignored.
    pub fn blend(&mut self, x: i64, y: i64, color: Rgb, alpha: f32) {
        if x < 0 || y < 0 || x >= self.width as i64 || y >= self.height as i64 || alpha <= 0.0 {
            return;
        }
        let a = alpha.min(1.0);
        let i = (y as usize * self.width as usize + x as usize) * 3;
        for (dst, &src) in self.buf[i..i + 3].iter_mut().zip(&color) {
            *dst = (*dst as f32 * (1.0 - a) + src as f32 * a).round() as u8;
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HAlign {
    Left,
    Center,
    Right,
}

/// Vertical anchor: `Top` of the line box, the `Middle` of the cap height
/// (visually centred digits/capitals), or the `Bottom` of the line box.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VAlign {
    Top,
    Middle,
    Bottom,
}

/// One line of text at a pixel size.
pub(crate) struct Label<'t> {
    pub text: &'t str,
    pub px: f32,
    pub color: Rgb,
}

/// Horizontal extent and line-box metrics of a text run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Metrics {
    pub width: f32,
    pub ascent: f32,
    pub descent: f32,
    pub cap: f32,
}

impl Metrics {
    pub fn line_height(&self) -> f32 {
        self.ascent - self.descent
    }
}

/// Lay out `text`: glyph ids with their caret x positions.
fn layout(text: &str, px: f32) -> Result<(Vec<(GlyphId, f32)>, Metrics)> {
    let f = font()?;
    let sf = f.as_scaled(PxScale::from(px));
    let mut caret = 0.0f32;
    let mut prev: Option<GlyphId> = None;
    let mut glyphs = Vec::with_capacity(text.len());
    for c in text.chars() {
        let id = sf.glyph_id(c);
        if let Some(p) = prev {
            caret += sf.kern(p, id);
        }
        glyphs.push((id, caret));
        caret += sf.h_advance(id);
        prev = Some(id);
    }
    let cap = f.outline_glyph(sf.scaled_glyph('H')).map(|g| -g.px_bounds().min.y).unwrap_or(sf.ascent() * 0.75);
    let m = Metrics { width: caret, ascent: sf.ascent(), descent: sf.descent(), cap };
    Ok((glyphs, m))
}

/// Measure a text run.
pub(crate) fn measure(text: &str, px: f32) -> Result<Metrics> {
    Ok(layout(text, px)?.1)
}

/// Draw `label` anchored at `(x, y)`. With `rotated` the text runs bottom
/// to top (90 degrees counter-clockwise) and the alignments apply along the
/// text direction / across it as for horizontal text.
pub(crate) fn draw(
    canvas: &mut Canvas<'_>,
    label: &Label<'_>,
    (x, y): (f32, f32),
    h: HAlign,
    v: VAlign,
    rotated: bool,
) -> Result<Metrics> {
    let (glyphs, m) = layout(label.text, label.px)?;
    let f = font()?;
    let scale = PxScale::from(label.px);
    // Offsets of the baseline origin relative to the anchor, in text space.
    let ox = match h {
        HAlign::Left => 0.0,
        HAlign::Center => -m.width / 2.0,
        HAlign::Right => -m.width,
    };
    let oy = match v {
        VAlign::Top => m.ascent,
        VAlign::Middle => m.cap / 2.0,
        VAlign::Bottom => m.descent,
    };
    // Horizontal text is placed with sub-pixel precision. Rotated text is
    // laid out around the origin and each pixel (tx, ty) is mapped to
    // (ax + ty, ay - tx) around the rounded anchor.
    let (ax, ay) = (x.round() as i64, y.round() as i64);
    let (base_x, base_y) = if rotated { (ox, oy) } else { (x + ox, y + oy) };
    for &(id, cx) in &glyphs {
        let glyph = id.with_scale_and_position(scale, point(base_x + cx, base_y));
        let Some(outline) = f.outline_glyph(glyph) else {
            continue;
        };
        let b = outline.px_bounds();
        let (bx, by) = (b.min.x as i64, b.min.y as i64);
        outline.draw(|gx, gy, cov| {
            let (tx, ty) = (bx + gx as i64, by + gy as i64);
            let (px, py) = if rotated { (ax + ty, ay - tx) } else { (tx, ty) };
            canvas.blend(px, py, label.color, cov);
        });
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ink_bounds(buf: &[u8], w: u32) -> Option<(u32, u32, u32, u32)> {
        let mut b: Option<(u32, u32, u32, u32)> = None;
        for (i, p) in buf.chunks_exact(3).enumerate() {
            if p[0] < 200 {
                let (x, y) = (i as u32 % w, i as u32 / w);
                b = Some(match b {
                    None => (x, y, x, y),
                    Some((x0, y0, x1, y1)) => (x0.min(x), y0.min(y), x1.max(x), y1.max(y)),
                });
            }
        }
        b
    }

    #[test]
    fn horizontal_and_rotated_text_land_where_anchored() {
        let (w, h) = (200u32, 200u32);
        let label = Label { text: "Hello", px: 20.0, color: [0, 0, 0] };
        let m = measure(label.text, label.px).unwrap();
        assert!(m.width > 30.0 && m.width < 80.0, "{m:?}");
        assert!(m.cap > 8.0 && m.cap < m.ascent);

        let mut buf = vec![255u8; (w * h * 3) as usize];
        let mut c = Canvas { buf: &mut buf, width: w, height: h };
        draw(&mut c, &label, (100.0, 50.0), HAlign::Center, VAlign::Middle, false).unwrap();
        let (x0, y0, x1, y1) = ink_bounds(&buf, w).unwrap();
        assert!(x0 >= 100 - m.width as u32 / 2 - 1 && x1 <= 100 + m.width as u32 / 2 + 1);
        // Capitals only: ink is centred on the anchor row within a pixel.
        assert!(((y0 + y1) as f32 / 2.0 - 50.0).abs() <= 1.0, "{y0}..{y1}");

        let mut buf = vec![255u8; (w * h * 3) as usize];
        let mut c = Canvas { buf: &mut buf, width: w, height: h };
        draw(&mut c, &label, (20.0, 100.0), HAlign::Center, VAlign::Top, true).unwrap();
        let (x0, y0, x1, y1) = ink_bounds(&buf, w).unwrap();
        // Runs vertically, centred on y = 100, starting right of x = 20.
        assert!(y1 - y0 > x1 - x0, "not rotated: {x0},{y0}..{x1},{y1}");
        assert!(((y0 + y1) as f32 / 2.0 - 100.0).abs() <= 2.0);
        assert!(x0 >= 20 && x1 <= 20 + m.line_height().ceil() as u32);
    }

    #[test]
    fn drawing_outside_the_canvas_is_clipped() {
        let mut buf = vec![255u8; 10 * 10 * 3];
        let mut c = Canvas { buf: &mut buf, width: 10, height: 10 };
        let label = Label { text: "clipped text", px: 30.0, color: [0, 0, 0] };
        draw(&mut c, &label, (-5.0, -5.0), HAlign::Left, VAlign::Top, false).unwrap();
        draw(&mut c, &label, (5.0, 5.0), HAlign::Center, VAlign::Middle, true).unwrap();
    }
}
