//! The exit codes of the `ironvault` binary, in one place. `ironvault --help`
//! prints `Exit::HELP`; docs/ point here.
//!
//! | code | name            | meaning |
//! |------|-----------------|---------|
//! | 0    | `Ok`            | done |
//! | 1    | `Failure`       | an error (the message says which); for `check`: damage found |
//! | 2    | `Usage`         | wrong usage (bad arguments); for `status` and `drill`: an objective is missed (`Exit::OBJECTIVE_MISSED`) |
//! | 3    | `Partial`       | snapshot written (or restore done) but some files could not be read or restored; for `run`: a step ended with a warning (a prune postponed) |
//! | 10   | `RepoMissing`   | the repository does not exist |
//! | 11   | `Locked`        | the repository is locked; for `run` and `drill`: the plan is running already |
//! | 12   | `WrongPassword` | no key file matched the password |
//! | 13   | `Rollback`      | backup or restore of latest done (or `check` passed, or `security status`), but the repository went back in time or was tampered with (see the warnings); `prune` refuses with it |
//! | 130  | `Interrupted`   | interrupted (SIGINT/SIGTERM), stopped at a safe point |

/// How an `ironvault` command ended, as its process exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Exit {
    /// Done.
    Ok = 0,
    /// An error; the one-line message says which.
    Failure = 1,
    /// Wrong usage (bad arguments, as clap's own); `status`, `drill`: an objective is missed.
    Usage = 2,
    /// Done, but some files could not be read or restored (or a plan step warned).
    Partial = 3,
    /// The repository does not exist.
    RepoMissing = 10,
    /// The repository is locked by another process.
    Locked = 11,
    /// No key file matched the password.
    WrongPassword = 12,
    /// The repository went back in time or was tampered with (security alarms kept).
    Rollback = 13,
    /// Interrupted; the repository is consistent.
    Interrupted = 130,
}

impl Exit {
    /// Every code, in the order of the table above.
    pub const ALL: [Exit; 9] = [
        Exit::Ok,
        Exit::Failure,
        Exit::Usage,
        Exit::Partial,
        Exit::RepoMissing,
        Exit::Locked,
        Exit::WrongPassword,
        Exit::Rollback,
        Exit::Interrupted,
    ];

    /// `status` and `drill`: an objective (RPO, RTO, 3-2-1) is missed. The
    /// same code as `Usage`, as it has always been: a scheduler treats both
    /// as "look at this".
    pub const OBJECTIVE_MISSED: Exit = Exit::Usage;

    /// The exit code list for `ironvault --help` (the table above, in a line).
    pub const HELP: &'static str =
        "Exit codes: 0 ok; 1 error; 2 wrong usage (bad arguments); 3 snapshot written \
(or restore done) but some files could not be read or restored; 10 repository does not exist; \
11 repository is locked; 12 wrong password; 13 backup or restore of latest done, but the \
repository went back in time or was tampered with (see the warnings); 130 interrupted.";

    /// The process exit code.
    pub const fn code(self) -> u8 {
        self as u8
    }

    /// The exit of a finished child process (None: a signal ended it, or a
    /// code this binary does not give).
    pub fn from_code(code: Option<i32>) -> Option<Exit> {
        let code = code?;
        Exit::ALL.into_iter().find(|e| i32::from(e.code()) == code)
    }
}

impl From<Exit> for u8 {
    fn from(e: Exit) -> u8 {
        e.code()
    }
}

impl From<Exit> for i32 {
    fn from(e: Exit) -> i32 {
        e.code().into()
    }
}

impl PartialEq<Exit> for Option<i32> {
    /// `finished.code == Exit::Ok`: a child's exit status against a code.
    fn eq(&self, e: &Exit) -> bool {
        *self == Some(i32::from(*e))
    }
}

#[cfg(test)]
mod tests {
    use super::Exit;

    #[test]
    fn codes_are_the_documented_ones() {
        let codes: Vec<u8> = Exit::ALL.iter().map(|e| e.code()).collect();
        assert_eq!(codes, [0, 1, 2, 3, 10, 11, 12, 13, 130]);
        for e in Exit::ALL {
            assert_eq!(Exit::from_code(Some(e.code().into())), Some(e));
            assert!(Exit::HELP.contains(&format!(" {} ", e.code())), "{e:?}");
        }
        assert_eq!(Exit::from_code(Some(4)), None);
        assert_eq!(Exit::from_code(None), None);
        assert!(Some(13) == Exit::Rollback && None != Exit::Ok);
    }
}
