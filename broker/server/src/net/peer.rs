//! Who a TLS client is (Kafka's `DefaultKafkaPrincipalBuilder` for SSL): the subject of the
//! certificate it presented, as an RFC 2253 name (`CN=alice,O=example`, most specific first, the
//! form Java's `X500Principal.getName()` gives and Kafka's mapping rules are written against),
//! mapped by `ssl.principal.mapping.rules`. A client without a certificate is anonymous.

use strait_config::PrincipalMapper;
use x509_parser::prelude::{FromDer, X509Certificate};

/// The principal name of the client certificate `der`: `Ok(None)` without a certificate, `Err`
/// when it cannot be read or no mapping rule applies (the connection is refused, as in Kafka).
pub fn principal_name(
    der: Option<&[u8]>,
    mapper: &PrincipalMapper,
) -> Result<Option<String>, String> {
    let Some(der) = der else { return Ok(None) };
    let (_, cert) = X509Certificate::from_der(der)
        .map_err(|e| format!("unreadable client certificate: {e}"))?;
    let name = rfc2253(&cert);
    mapper
        .map(&name)
        .map(Some)
        .ok_or_else(|| format!("no ssl.principal.mapping.rules entry applies to {name}"))
}

fn rfc2253(cert: &X509Certificate<'_>) -> String {
    // RFC 2253 lists the RDNs in reverse order of the encoding.
    let rdns: Vec<String> = cert
        .subject()
        .iter_rdn()
        .map(|rdn| {
            rdn.iter()
                .map(|atv| {
                    let oid = atv.attr_type().to_id_string();
                    match (short_name(&oid), atv.as_str()) {
                        (Some(short), Ok(value)) => format!("{short}={}", escape(value)),
                        // Types without a short name, or values that are not strings, as
                        // `<oid>=#<hex of the value's DER>` (RFC 2253 2.4).
                        _ => {
                            let value = atv.attr_value();
                            let mut der = vec![value.tag().0 as u8];
                            der.extend(length(value.data.len()));
                            der.extend_from_slice(value.data);
                            let hex: String = der.iter().map(|b| format!("{b:02x}")).collect();
                            format!("{oid}=#{hex}")
                        }
                    }
                })
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect();
    rdns.into_iter().rev().collect::<Vec<_>>().join(",")
}

fn short_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.6" => "C",
        "2.5.4.9" => "STREET",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        _ => return None,
    })
}

fn length(n: usize) -> Vec<u8> {
    if n < 0x80 {
        vec![n as u8]
    } else {
        let bytes: Vec<u8> = n
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        let mut out = vec![0x80 | bytes.len() as u8];
        out.extend(bytes);
        out
    }
}

/// RFC 2253 2.4 escaping.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(dn: &[(rcgen::DnType, &str)]) -> Vec<u8> {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        for (t, v) in dn {
            params.distinguished_name.push(t.clone(), *v);
        }
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn subject_in_rfc2253_order_then_the_rules() {
        use rcgen::DnType;
        let der = cert(&[
            (DnType::CountryName, "US"),
            (DnType::OrganizationName, "strait.dev"),
            (DnType::OrganizationalUnitName, "apps, west"),
            (DnType::CommonName, "alice"),
        ]);
        let default = PrincipalMapper::default();
        assert_eq!(
            principal_name(Some(&der), &default).unwrap().as_deref(),
            Some("CN=alice,OU=apps\\, west,O=strait.dev,C=US")
        );
        let rules = PrincipalMapper::parse("RULE:^CN=([^,]*),.*$/$1/U").unwrap();
        assert_eq!(
            principal_name(Some(&der), &rules).unwrap().as_deref(),
            Some("ALICE")
        );
        let strict = PrincipalMapper::parse("RULE:^CN=bob,.*$/bob/").unwrap();
        assert!(principal_name(Some(&der), &strict).is_err());
        assert_eq!(principal_name(None, &strict).unwrap(), None);
        assert!(principal_name(Some(b"not a certificate"), &default).is_err());
    }
}
