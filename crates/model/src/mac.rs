//! Ethernet MAC addresses, as DHCP leases and device registries write them.

use std::fmt;

/// A 48-bit MAC address. Parses `aa:bb:cc:dd:ee:ff`, `AA-BB-CC-DD-EE-FF` and
/// `aabb.ccdd.eeff`; displays lower-case with colons.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

/// Why a string is not a MAC address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a MAC address (expected six hex pairs such as aa:bb:cc:dd:ee:ff)")]
#[non_exhaustive]
pub struct MacError(pub String);

impl MacAddr {
    pub fn parse(s: &str) -> Result<Self, MacError> {
        let hex: String = s
            .trim()
            .chars()
            .filter(|c| !matches!(c, ':' | '-' | '.'))
            .collect();
        if hex.len() != 12 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(MacError(s.to_owned()));
        }
        let mut out = [0u8; 6];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[i * 2..i * 2 + 2], 16)
                .map_err(|_| MacError(s.to_owned()))?;
        }
        Ok(Self(out))
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MacAddr({self})")
    }
}

impl std::str::FromStr for MacAddr {
    type Err = MacError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl serde::Serialize for MacAddr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for MacAddr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        MacAddr::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_agree() {
        let want = "aa:bb:cc:0d:0e:0f";
        for s in ["aa:bb:cc:0d:0e:0f", "AA-BB-CC-0D-0E-0F", "aabb.cc0d.0e0f"] {
            assert_eq!(MacAddr::parse(s).unwrap().to_string(), want);
        }
        assert!(MacAddr::parse("aa:bb:cc").is_err());
        assert!(MacAddr::parse("zz:bb:cc:dd:ee:ff").is_err());
    }
}
