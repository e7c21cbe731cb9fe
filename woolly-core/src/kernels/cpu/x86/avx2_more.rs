//! AVX2 dot products for the remaining weight types (filled in next).

use super::super::VecDotFn;
use crate::gguf::GgmlType;

pub(super) fn kernel(_ty: GgmlType) -> Option<VecDotFn> {
    None
}
