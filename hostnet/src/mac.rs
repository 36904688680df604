//! Ethernet addresses.

use std::fmt;
use std::str::FromStr;

use crate::HostnetError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    /// A locally administered unicast address derived from `seed` (stable for the same seed),
    /// so a veth end's MAC can be known before the kernel creates it.
    pub fn local_from(seed: &[u8]) -> Mac {
        let mut m = [0u8; 6];
        m[1..].copy_from_slice(&seed[..5]);
        m[0] = 0x02 | (seed.get(5).copied().unwrap_or(0) & 0xfc);
        Mac(m)
    }

    pub fn from_slice(b: &[u8]) -> Option<Mac> {
        <[u8; 6]>::try_from(b).ok().map(Mac)
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl FromStr for Mac {
    type Err = HostnetError;
    fn from_str(s: &str) -> Result<Mac, HostnetError> {
        let bad = || HostnetError::BadMac(s.to_string());
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for b in &mut out {
            let p = parts.next().ok_or_else(bad)?;
            if p.len() != 2 {
                return Err(bad());
            }
            *b = u8::from_str_radix(p, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(Mac(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_local_bit() {
        let m: Mac = "02:ab:00:10:ff:01".parse().unwrap();
        assert_eq!(m.to_string(), "02:ab:00:10:ff:01");
        assert!("02:ab:00:10:ff".parse::<Mac>().is_err());
        assert!("02:ab:00:10:ff:01:02".parse::<Mac>().is_err());
        let l = Mac::local_from(&[0xff; 8]);
        assert_eq!(l.0[0] & 0x03, 0x02, "unicast, locally administered");
    }
}
