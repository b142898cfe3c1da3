//! The one integration-test binary: each module covers one part of the product.

mod util;

mod fbank_parity;
mod model_parity;
