//! Link layers: Ethernet, Linux cooked (SLL, SLL2), raw IP, BSD null/loopback, PPP, 802.11.
// STUB: the decode helper replaces this file.

use super::{IpPacket, SkipReason};
use crate::capture::LinkType;

pub(super) fn decode_link<'a, F>(
    _link: LinkType,
    _frame: &'a [u8],
    _visit: &mut F,
) -> Result<(), SkipReason>
where
    F: FnMut(&IpPacket<'a>),
{
    Err(SkipReason::UnsupportedLinkType)
}
