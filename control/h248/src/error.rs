//! Decode errors: where (byte offset), what was expected, and the H.248 error code the reply
//! must carry. The code depends on how far the decoder got (H.248.1 8.2.2 and Annex B):
//! a broken header is 400, a broken transaction 403 (with transaction ID 0 when the ID itself
//! could not be read), a broken action 422, a broken command 442, a bad value 449.

use std::fmt;

/// H.248.1 error codes the codec and the MG model use (H.248.8).
pub mod code {
    pub const SYNTAX_ERROR_IN_MESSAGE: u16 = 400;
    pub const PROTOCOL_ERROR: u16 = 401;
    pub const SYNTAX_ERROR_IN_TRANSACTION: u16 = 403;
    pub const VERSION_NOT_SUPPORTED: u16 = 406;
    pub const SYNTAX_ERROR_IN_ACTION: u16 = 422;
    pub const SYNTAX_ERROR_IN_COMMAND: u16 = 442;
    pub const UNKNOWN_PARAMETER_OR_PROPERTY_VALUE: u16 = 449;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// Byte offset in the message where decoding stopped.
    pub offset: usize,
    /// What the grammar allowed there.
    pub expected: &'static str,
    /// A short excerpt of what was found (empty at the end of the input).
    pub found: String,
    /// The H.248 error code a reply must carry.
    pub code: u16,
    /// The transaction being decoded, if its ID had been read; a reply goes to ID 0 otherwise.
    pub transaction: Option<u32>,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.found.is_empty() {
            write!(
                f,
                "offset {}: expected {} at end of input (H.248 error {})",
                self.offset, self.expected, self.code
            )
        } else {
            write!(
                f,
                "offset {}: expected {}, found {:?} (H.248 error {})",
                self.offset, self.expected, self.found, self.code
            )
        }
    }
}

impl std::error::Error for DecodeError {}
