//! Pixel orders: channels-first (planar, `[c, h, w]` per image, as PyTorch and CIFAR store
//! images) and channels-last (interleaved, `[h, w, c]`, as apsig computes on them). Every
//! reader and writer of image tensors converts with these two.

/// Images stored channels-first (`[n, channels, plane]`, `plane = h * w`) in channels-last
/// order (`[n, plane, channels]`).
///
/// ```
/// // one 1x2 image, 3 channels: planes R=[1,2], G=[3,4], B=[5,6]
/// assert_eq!(apsig_data::planar_to_interleaved(&[1, 2, 3, 4, 5, 6], 2, 3), vec![1, 3, 5, 2, 4, 6]);
/// ```
pub fn planar_to_interleaved<T: Copy>(x: &[T], plane: usize, channels: usize) -> Vec<T> {
    let mut out = Vec::with_capacity(x.len());
    for image in x.chunks_exact(plane * channels) {
        for p in 0..plane {
            out.extend((0..channels).map(|c| image[c * plane + p]));
        }
    }
    out
}

/// The inverse of [`planar_to_interleaved`]: channels-last images in channels-first order.
pub fn interleaved_to_planar<T: Copy>(x: &[T], plane: usize, channels: usize) -> Vec<T> {
    let mut out = Vec::with_capacity(x.len());
    for image in x.chunks_exact(plane * channels) {
        for c in 0..channels {
            out.extend(image.iter().skip(c).step_by(channels).copied());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_two_orders_are_inverses() {
        let x: Vec<u32> = (0..2 * 3 * 4).collect(); // two images, 3 channels, 4 pixels
        let planar = interleaved_to_planar(&x, 4, 3);
        assert_eq!(&planar[..4], &[0, 3, 6, 9], "first plane of the first image");
        assert_eq!(planar_to_interleaved(&planar, 4, 3), x);
        assert_eq!(interleaved_to_planar(&x, 12, 1), x, "one channel: nothing moves");
    }
}
