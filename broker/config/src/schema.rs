//! Config definitions in the manner of Kafka's `ConfigDef`: a type, a default, a validator and a
//! doc string per key, and the parsing and validation of string values against them.

/// Kafka's config types with their DescribeConfigs wire ids.
#[repr(i8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConfigType {
    Unknown = 0,
    Boolean = 1,
    String = 2,
    Int = 3,
    Short = 4,
    Long = 5,
    Double = 6,
    List = 7,
    Class = 8,
    Password = 9,
}

impl ConfigType {
    /// The id sent in DescribeConfigs responses.
    pub fn id(self) -> i8 {
        self as i8
    }

    /// Kafka's upper-case type name, as used in its error messages.
    pub fn kafka_name(self) -> &'static str {
        match self {
            ConfigType::Unknown => "UNKNOWN",
            ConfigType::Boolean => "BOOLEAN",
            ConfigType::String => "STRING",
            ConfigType::Int => "INT",
            ConfigType::Short => "SHORT",
            ConfigType::Long => "LONG",
            ConfigType::Double => "DOUBLE",
            ConfigType::List => "LIST",
            ConfigType::Class => "CLASS",
            ConfigType::Password => "PASSWORD",
        }
    }
}

/// `Long.MAX_VALUE`, Kafka's "never" for many time and count settings.
pub(crate) const LONG_MAX: &str = "9223372036854775807";

/// Kafka's validators, as far as the configs Strait knows use them.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Validator {
    Any,
    AtLeast(i64),
    Between(i64, i64),
    DoubleBetween(f64, f64),
    /// The value must be one of these strings (Kafka's `ValidString.in`).
    OneOf(&'static [&'static str]),
    /// Every list element must be one of these strings (Kafka's `ValidList.in`).
    ListOf(&'static [&'static str]),
    /// Kafka's gzip level rule: 1..=9 or -1 (the zlib default).
    GzipLevel,
    /// `*` or a list of `partition:broker` pairs (Kafka's `ThrottledReplicaListValidator`).
    ThrottledReplicas,
}

/// One config key's definition.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConfigDef {
    pub name: &'static str,
    pub ty: ConfigType,
    /// `None` is Kafka's `null` default.
    pub default: Option<&'static str>,
    pub validator: Validator,
    pub doc: &'static str,
}

/// A parsed value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Bool(bool),
    /// INT, SHORT and LONG, range-checked for their Java type.
    Int(i64),
    Double(f64),
    Str(String),
    List(Vec<String>),
}

impl Value {
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(n) => Some(*n),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// Kafka's `ConfigDef.convertToString`: the value's wire form.
    pub fn canonical(&self) -> String {
        match self {
            Value::Bool(b) => b.to_string(),
            Value::Int(n) => n.to_string(),
            Value::Double(d) if d.is_finite() && d.fract() == 0.0 => format!("{d:.1}"),
            Value::Double(d) => d.to_string(),
            Value::Str(s) => s.clone(),
            Value::List(items) => items.join(","),
        }
    }
}

/// Kafka's LIST parsing: trimmed, split on commas with surrounding blanks; empty means no items.
pub(crate) fn split_list(raw: &str) -> Vec<String> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Vec::new();
    }
    trimmed.split(',').map(|s| s.trim().to_string()).collect()
}

impl ConfigDef {
    /// Parses and validates `raw`.
    pub fn check(&self, raw: &str) -> Result<Value, Rejection> {
        let rejected = |detail: String| Rejection {
            value: raw.trim().to_string(),
            detail,
        };
        let value = self.parse(raw).map_err(rejected)?;
        if let (Validator::ListOf(allowed), Value::List(items)) = (self.validator, &value) {
            // Kafka validates list elements one by one and names the offending element.
            if let Some(bad) = items.iter().find(|i| !allowed.contains(&i.as_str())) {
                return Err(Rejection {
                    value: bad.clone(),
                    detail: format!("String must be one of: {}", allowed.join(", ")),
                });
            }
        }
        self.validate(&value).map_err(rejected)?;
        Ok(value)
    }

    fn parse(&self, raw: &str) -> Result<Value, String> {
        let trimmed = raw.trim();
        let not_a_number = || format!("Not a number of type {}", self.ty.kafka_name());
        Ok(match self.ty {
            ConfigType::Boolean => match trimmed.to_ascii_lowercase().as_str() {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                _ => return Err("Expected value to be either true or false".into()),
            },
            ConfigType::Short => {
                Value::Int(trimmed.parse::<i16>().map_err(|_| not_a_number())?.into())
            }
            ConfigType::Int => {
                Value::Int(trimmed.parse::<i32>().map_err(|_| not_a_number())?.into())
            }
            ConfigType::Long => Value::Int(trimmed.parse::<i64>().map_err(|_| not_a_number())?),
            ConfigType::Double => {
                let d = trimmed.parse::<f64>().map_err(|_| not_a_number())?;
                if d.is_nan() {
                    return Err(not_a_number());
                }
                Value::Double(d)
            }
            ConfigType::List => Value::List(split_list(trimmed)),
            ConfigType::String | ConfigType::Class | ConfigType::Password | ConfigType::Unknown => {
                Value::Str(trimmed.to_string())
            }
        })
    }

    fn validate(&self, value: &Value) -> Result<(), String> {
        match (self.validator, value) {
            (Validator::Any, _) => Ok(()),
            (Validator::AtLeast(min), Value::Int(n)) if *n < min => {
                Err(format!("Value must be at least {min}"))
            }
            (Validator::Between(min, _), Value::Int(n)) if *n < min => {
                Err(format!("Value must be at least {min}"))
            }
            (Validator::Between(_, max), Value::Int(n)) if *n > max => {
                Err(format!("Value must be no more than {max}"))
            }
            (Validator::DoubleBetween(min, _), Value::Double(d)) if *d < min => {
                Err(format!("Value must be at least {min}"))
            }
            (Validator::DoubleBetween(_, max), Value::Double(d)) if *d > max => {
                Err(format!("Value must be no more than {max}"))
            }
            (Validator::OneOf(allowed), Value::Str(s)) if !allowed.contains(&s.as_str()) => {
                Err(format!("String must be one of: {}", allowed.join(", ")))
            }
            (Validator::GzipLevel, Value::Int(n)) if !((1..=9).contains(n) || *n == -1) => {
                Err("Value must be between 1 and 9 or equal to -1".into())
            }
            (Validator::ThrottledReplicas, Value::List(items)) => {
                let pairs_ok = items
                    .iter()
                    .all(|i| i.is_empty() || is_partition_broker_pair(i));
                if pairs_ok || items.concat() == "*" {
                    Ok(())
                } else {
                    Err(format!(
                        "{} must be the literal '*' or a list of replicas in the following \
                         format: [partitionId]:[brokerId],[partitionId]:[brokerId],...",
                        self.name
                    ))
                }
            }
            _ => Ok(()),
        }
    }
}

fn is_partition_broker_pair(item: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    item.split_once(':')
        .is_some_and(|(p, b)| digits(p) && digits(b))
}

/// Why a value was rejected: the offending value (a list element for lists) and Kafka's detail
/// text, without the "Invalid value ... for configuration ..." prefix.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Rejection {
    pub value: String,
    pub detail: String,
}

impl Rejection {
    /// Kafka's `ConfigException` message: `Invalid value V for configuration K: DETAIL`.
    pub fn kafka_message(&self, name: &str) -> String {
        format!(
            "Invalid value {} for configuration {name}: {}",
            self.value, self.detail
        )
    }
}
