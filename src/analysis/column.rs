//! Per-node columns narrower than their type: values kept in 1, 2 or 4 bytes, whichever
//! holds the largest (class indices: most heaps have fewer than 256 or 65,536 classes).

/// Column of small unsigned values in the narrowest width that holds the largest.
#[derive(Debug, Clone)]
pub enum Narrow {
    U8(Vec<u8>),
    U16(Vec<u16>),
    U32(Vec<u32>),
}

impl Default for Narrow {
    fn default() -> Self {
        Self::U8(Vec::new())
    }
}

impl Narrow {
    /// `v`'s values (each at most `max`) in the narrowest width; `v` is freed.
    pub fn from_u32s(v: Vec<u32>, max: u32) -> Self {
        if max > u16::MAX as u32 {
            return Self::U32(v);
        }
        let mut out = Self::zeros(v.len(), max as u64);
        for (i, &x) in v.iter().enumerate() {
            out.set(i, x);
        }
        out
    }
    pub fn len(&self) -> usize {
        match self {
            Self::U8(a) => a.len(),
            Self::U16(a) => a.len(),
            Self::U32(a) => a.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn zeros(n: usize, max: u64) -> Self {
        if max <= u8::MAX as u64 {
            Self::U8(vec![0; n])
        } else if max <= u16::MAX as u64 {
            Self::U16(vec![0; n])
        } else {
            Self::U32(vec![0; n])
        }
    }
    #[inline]
    pub fn get(&self, i: usize) -> u32 {
        match self {
            Self::U8(a) => a[i] as u32,
            Self::U16(a) => a[i] as u32,
            Self::U32(a) => a[i],
        }
    }
    #[inline]
    pub fn set(&mut self, i: usize, v: u32) {
        match self {
            Self::U8(a) => a[i] = v as u8,
            Self::U16(a) => a[i] = v as u16,
            Self::U32(a) => a[i] = v,
        }
    }
    pub fn heap_bytes(&self) -> usize {
        match self {
            Self::U8(a) => a.capacity(),
            Self::U16(a) => a.capacity() * 2,
            Self::U32(a) => a.capacity() * 4,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_width_holds_its_largest_value_and_round_trips() {
        for (max, width) in [
            (0u32, 1usize),
            (255, 1),
            (256, 2),
            (65_535, 2),
            (65_536, 4),
            (u32::MAX, 4),
        ] {
            let v: Vec<u32> = (0..1000u32)
                .map(|i| (i as u64 * max as u64 / 999) as u32)
                .collect();
            let c = Narrow::from_u32s(v.clone(), max);
            assert_eq!(c.len(), v.len());
            assert_eq!(c.heap_bytes(), v.len() * width, "max {max}");
            assert!((0..v.len()).all(|i| c.get(i) == v[i]), "max {max}");
        }
    }
}
