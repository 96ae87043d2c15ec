//! A unit file's `Key=value` settings as systemd reads them: the last assignment of a key wins
//! (systemd's rule for single-valued settings). Pure text reading; imports nothing of the harness.

/// The value of `key` (`User=`) in the unit's text, its last non-empty assignment.
pub fn setting(unit_file: &str, key: &str) -> Option<String> {
    unit_file
        .lines()
        .filter_map(|l| l.trim().strip_prefix(key))
        .map(|v| v.trim().to_owned())
        .rfind(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_assignment_of_a_key_wins() {
        let unit = "[Service]\nUser=root\nUser=etcd\nGroup=\n";
        assert_eq!(setting(unit, "User=").as_deref(), Some("etcd"));
        assert_eq!(setting(unit, "Group="), None);
        assert_eq!(setting(unit, "WorkingDirectory="), None);
    }
}
