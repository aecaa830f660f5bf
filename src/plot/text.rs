//! Text drawn with `ab_glyph` directly, as a plotters element.
//!
//! plotters 0.3.7's `ab_glyph` text path places each glyph at the pen position without its left
//! side bearing, which opens visible gaps after narrow letters ("par ticles"). [`Label`] lays
//! out glyphs properly (advance, kerning, bearing, sub-pixel positions), can be anchored on any
//! side and rotated a quarter turn for vertical axis titles. Sizes mean the same as plotters'
//! font sizes: the font's full height (ascent to descent) in pixels.

use ab_glyph::{point, Font, FontRef, GlyphId, PxScale, ScaleFont};
use plotters::element::{Drawable, PointCollection};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};
use plotters_backend::{BackendColor, BackendCoord, DrawingErrorKind};
use std::sync::OnceLock;

/// The embedded DejaVu Sans, regular and bold (`None` if the bytes do not parse).
fn fonts() -> Option<&'static (FontRef<'static>, FontRef<'static>)> {
    static FONTS: OnceLock<Option<(FontRef<'static>, FontRef<'static>)>> = OnceLock::new();
    FONTS
        .get_or_init(|| {
            let r = FontRef::try_from_slice(dejavu::sans::regular()).ok()?;
            let b = FontRef::try_from_slice(dejavu::sans::bold()).ok()?;
            Some((r, b))
        })
        .as_ref()
}

/// Whether the embedded fonts load.
pub(crate) fn fonts_ok() -> bool {
    fonts().is_some()
}

fn font_for(bold: bool) -> Option<&'static FontRef<'static>> {
    fonts().map(|f| if bold { &f.1 } else { &f.0 })
}

/// Glyph ids and pen positions of `text` at `size`, and its advance width.
fn layout(font: &FontRef<'static>, size: f64, text: &str) -> (Vec<(GlyphId, f32)>, f32) {
    let sf = font.as_scaled(PxScale::from(size as f32));
    let mut pen = 0f32;
    let mut prev: Option<GlyphId> = None;
    let mut out = Vec::with_capacity(text.len());
    for c in text.chars() {
        let id = sf.glyph_id(c);
        if let Some(p) = prev {
            pen += sf.kern(p, id);
        }
        out.push((id, pen));
        pen += sf.h_advance(id);
        prev = Some(id);
    }
    (out, pen)
}

/// Width and height (ascent to descent) in pixels of `text` at `size`.
pub(crate) fn measure(text: &str, size: f64, bold: bool) -> (f64, f64) {
    match font_for(bold) {
        Some(f) => {
            let (_, w) = layout(f, size, text);
            (w as f64, size)
        }
        None => (text.chars().count() as f64 * size * 0.6, size),
    }
}

/// A text element: `text` at `pos` (+ a pixel `offset`), anchored by `(h, v)`.
#[derive(Clone)]
pub(crate) struct Label<C> {
    pos: C,
    offset: (i32, i32),
    text: String,
    size: f64,
    color: RGBAColor,
    bold: bool,
    anchor: (HPos, VPos),
    /// A quarter turn counter-clockwise: the text reads upwards.
    vertical: bool,
}

impl<C> Label<C> {
    pub fn new(text: impl Into<String>, pos: C, size: f64) -> Self {
        Self {
            pos,
            offset: (0, 0),
            text: text.into(),
            size,
            color: super::canvas::TEXT.to_rgba(),
            bold: false,
            anchor: (HPos::Left, VPos::Center),
            vertical: false,
        }
    }
    pub fn color(mut self, c: impl Color) -> Self {
        self.color = c.to_rgba();
        self
    }
    pub fn bold(mut self) -> Self {
        self.bold = true;
        self
    }
    pub fn anchor(mut self, h: HPos, v: VPos) -> Self {
        self.anchor = (h, v);
        self
    }
    pub fn offset(mut self, dx: i32, dy: i32) -> Self {
        self.offset = (dx, dy);
        self
    }
    pub fn vertical(mut self) -> Self {
        self.vertical = true;
        self
    }
}

impl<'a, C: 'a> PointCollection<'a, C> for &'a Label<C> {
    type Point = &'a C;
    type IntoIter = std::iter::Once<&'a C>;
    fn point_iter(self) -> Self::IntoIter {
        std::iter::once(&self.pos)
    }
}

impl<C, DB: DrawingBackend> Drawable<DB> for Label<C> {
    fn draw<I: Iterator<Item = BackendCoord>>(
        &self,
        mut pos: I,
        backend: &mut DB,
        _parent_dim: (u32, u32),
    ) -> Result<(), DrawingErrorKind<DB::ErrorType>> {
        let Some((x, y)) = pos.next() else {
            return Ok(());
        };
        let Some(font) = font_for(self.bold) else {
            return Ok(());
        };
        if self.text.is_empty() || self.size.is_nan() || self.size <= 0.5 {
            return Ok(());
        }
        let (x, y) = (x + self.offset.0, y + self.offset.1);
        let scale = PxScale::from(self.size as f32);
        let sf = font.as_scaled(scale);
        let (glyphs, width) = layout(font, self.size, &self.text);
        let (ascent, descent) = (sf.ascent(), sf.descent()); // descent < 0
                                                             // local frame: pen starts at (dx, 0) on the baseline at local y = base
        let dx = match self.anchor.0 {
            HPos::Left => 0.0,
            HPos::Center => -width / 2.0,
            HPos::Right => -width,
        };
        let base = match self.anchor.1 {
            VPos::Top => ascent,
            VPos::Center => (ascent + descent) / 2.0,
            VPos::Bottom => descent,
        };
        let rgb = (self.color.0, self.color.1, self.color.2);
        let alpha = self.color.3;
        for (id, pen) in glyphs {
            let g = id.with_scale_and_position(scale, point(dx + pen, base));
            let Some(og) = font.outline_glyph(g) else {
                continue;
            };
            let b = og.px_bounds();
            let (bx, by) = (b.min.x as i32, b.min.y as i32);
            let mut err = None;
            og.draw(|gx, gy, cov| {
                if err.is_some() || cov <= 0.0 {
                    return;
                }
                let (lx, ly) = (bx + gx as i32, by + gy as i32);
                let p = if self.vertical { (x + ly, y - lx) } else { (x + lx, y + ly) };
                let c = BackendColor { alpha: alpha * (cov.min(1.0) as f64), rgb };
                if let Err(e) = backend.draw_pixel(p, c) {
                    err = Some(e);
                }
            });
            if let Some(e) = err {
                return Err(e);
            }
        }
        Ok(())
    }
}
