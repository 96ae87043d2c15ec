//! Enums that data files spell as one of a few names (`"pass"`, `"tls-unknown-ca"`, …): one table of
//! names per enum, read by serde and by the code that prints them, so the two cannot drift.
//!
//! serde's derive lets TOML answer a value of the wrong type with `wanted string or table`, which
//! names neither the field nor the values it takes; these read a string and list the accepted names
//! on every error. Unit-only enums only.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserializer, Unexpected, Visitor};

/// A unit-only enum with a name for each value.
pub trait Named: Sized + Copy + PartialEq + 'static {
    /// Every value with its name, in the order errors list them.
    const NAMES: &'static [(&'static str, Self)];

    /// This value's name.
    fn name(self) -> &'static str {
        Self::NAMES
            .iter()
            .find(|(_, value)| *value == self)
            .map(|(name, _)| *name)
            .unwrap_or("?")
    }
}

/// The accepted names, as an error lists them: `` `pass` or `fail` ``, `` `a`, `b` or `c` ``.
pub fn accepted<T: Named>() -> String {
    let quoted: Vec<String> = T::NAMES.iter().map(|(n, _)| format!("`{n}`")).collect();
    match quoted.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    }
}

/// Reads one of `T`'s names.
pub fn deserialize<'de, D: Deserializer<'de>, T: Named>(deserializer: D) -> Result<T, D::Error> {
    struct ByName<T>(PhantomData<T>);

    impl<T: Named> Visitor<'_> for ByName<T> {
        type Value = T;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(&accepted::<T>())
        }

        fn visit_str<E: de::Error>(self, value: &str) -> Result<T, E> {
            T::NAMES
                .iter()
                .find(|(name, _)| *name == value)
                .map(|(_, v)| *v)
                .ok_or_else(|| E::invalid_value(Unexpected::Str(value), &self))
        }
    }

    deserializer.deserialize_str(ByName(PhantomData))
}

/// Implements [`Named`] and `Deserialize` for a unit-only enum from its table of names.
macro_rules! by_name {
    ($type:ident { $($name:literal => $variant:ident),+ $(,)? }) => {
        impl $crate::names::Named for $type {
            const NAMES: &'static [(&'static str, Self)] = &[$(($name, $type::$variant)),+];
        }

        impl<'de> serde::Deserialize<'de> for $type {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                $crate::names::deserialize(deserializer)
            }
        }
    };
}
pub(crate) use by_name;

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Weather {
        Sun,
        Rain,
        Snow,
    }
    by_name!(Weather { "sun" => Sun, "rain" => Rain, "snow" => Snow });

    #[derive(Debug, serde::Deserialize)]
    struct Day {
        #[allow(dead_code)]
        weather: Weather,
    }

    #[test]
    fn a_name_reads_its_value_and_prints_back() {
        let day: Day = toml::from_str("weather = \"rain\"").unwrap();
        assert_eq!(day.weather, Weather::Rain);
        assert_eq!(Weather::Snow.name(), "snow");
    }

    #[test]
    fn a_wrong_type_or_an_unknown_name_lists_the_accepted_names() {
        for text in ["weather = true", "weather = \"hail\"", "weather = 3"] {
            let err = toml::from_str::<Day>(text).unwrap_err();
            assert!(
                err.message().contains("`sun`, `rain` or `snow`"),
                "{text}: {}",
                err.message()
            );
        }
    }
}
