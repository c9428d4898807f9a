//! A seccomp program from one decision per syscall number, laid out as a
//! binary search over ranges of numbers. Pure: it builds and, for tests,
//! runs programs; installing one is [`crate::seccomp`]'s.
//!
//! Why not seccompiler: it gives a filter one action for a match and one
//! for a mismatch, so three tiers took three filters, and it tests the
//! syscalls one after another. When a filter is attached the kernel runs
//! it for every syscall number to learn which are always allowed (its
//! action cache), so a long chain costs at every worker start: the
//! policy as three seccompiler filters (about 1,600 instructions) took
//! 1.1 ms to attach here, against about 0.15 ms for this one program, in
//! which any number is at most a dozen comparisons from its decision.
//!
//! Layout: check the architecture (another one, e.g. a 32-bit syscall on
//! x86_64, kills the process), load the number, then a tree of `jge`
//! over the boundaries of the ranges that share a decision; a leaf
//! returns its action, or checks arguments (rules) inline and returns
//! `then` or `otherwise`. Every jump goes forward; rule blocks use short
//! jumps, tree nodes a long `ja` over the left subtree.

use std::collections::BTreeMap;

/// What the kernel does with a syscall.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    Allow,
    /// Fail with this errno.
    Errno(u16),
    /// `SIGSYS` to the thread (the reporter names the syscall).
    Trap,
    /// Ask the listener (the supervisor).
    Notify,
    KillProcess,
}

impl Action {
    /// The filter's return value.
    pub(crate) fn value(self) -> u32 {
        match self {
            Self::Allow => 0x7fff_0000,
            Self::Errno(errno) => 0x0005_0000 | u32::from(errno),
            Self::Trap => 0x0003_0000,
            Self::Notify => 0x7fc0_0000,
            Self::KillProcess => 0x8000_0000,
        }
    }
}

/// A test of one syscall argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Condition {
    /// The low 32 bits of the argument (where the kernel reads an `int`)
    /// equal the value.
    Eq32 { arg: u8, value: u32 },
    /// The low 32 bits of the argument differ from the value.
    Ne32 { arg: u8, value: u32 },
    /// All 64 bits of the argument, masked, equal the value.
    Masked64 { arg: u8, mask: u64, value: u64 },
}

#[cfg(test)]
impl Condition {
    fn holds(self, args: &[u64; 6]) -> bool {
        match self {
            Self::Eq32 { arg, value } => low(args[usize::from(arg)]) == value,
            Self::Ne32 { arg, value } => low(args[usize::from(arg)]) != value,
            Self::Masked64 { arg, mask, value } => args[usize::from(arg)] & mask == value,
        }
    }
}

/// A syscall's decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decision {
    Always(Action),
    /// `then` when every condition of any one rule holds, else
    /// `otherwise`.
    Rules {
        rules: Vec<Vec<Condition>>,
        then: Action,
        otherwise: Action,
    },
}

/// Every decision of a filter.
#[derive(Debug, Clone)]
pub(crate) struct Policy {
    /// `AUDIT_ARCH_*` of the syscalls this policy is for.
    pub(crate) arch: u32,
    pub(crate) syscalls: BTreeMap<u32, Decision>,
    /// For numbers not in `syscalls`.
    pub(crate) otherwise: Action,
}

#[cfg(test)]
impl Policy {
    /// What the policy decides for a syscall: the meaning every compiled
    /// program must have (the tests hold programs to it).
    pub(crate) fn decide(&self, arch: u32, nr: u32, args: &[u64; 6]) -> u32 {
        if arch != self.arch {
            return Action::KillProcess.value();
        }
        let action = match self.syscalls.get(&nr) {
            None => self.otherwise,
            Some(Decision::Always(action)) => *action,
            Some(Decision::Rules {
                rules,
                then,
                otherwise,
            }) => {
                if rules
                    .iter()
                    .any(|rule| rule.iter().all(|condition| condition.holds(args)))
                {
                    *then
                } else {
                    *otherwise
                }
            }
        };
        action.value()
    }
}

/// One classic BPF instruction (`struct sock_filter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Instruction {
    pub(crate) code: u16,
    pub(crate) jt: u8,
    pub(crate) jf: u8,
    pub(crate) k: u32,
}

// The instructions used, as `linux/bpf_common.h` composes them (a test
// checks them against libc's parts).
/// `BPF_LD | BPF_W | BPF_ABS`
const LD_W_ABS: u16 = 0x20;
/// `BPF_JMP | BPF_JEQ | BPF_K`
const JEQ_K: u16 = 0x15;
/// `BPF_JMP | BPF_JGE | BPF_K`
const JGE_K: u16 = 0x35;
/// `BPF_JMP | BPF_JA`
const JA: u16 = 0x05;
/// `BPF_ALU | BPF_AND | BPF_K`
const AND_K: u16 = 0x54;
/// `BPF_RET | BPF_K`
const RET_K: u16 = 0x06;

/// Offsets in `struct seccomp_data`.
const NR: u32 = 0;
const ARCH: u32 = 4;
const ARGS: u32 = 16;

/// A rule block that jumps further than a short jump can.
#[derive(Debug, thiserror::Error)]
#[error("a rule of {0} instructions is too long for a short jump")]
pub(crate) struct TooLong(usize);

fn stmt(code: u16, k: u32) -> Instruction {
    Instruction {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> Instruction {
    Instruction { code, jt, jf, k }
}

fn low(value: u64) -> u32 {
    (value & 0xffff_ffff) as u32
}

fn high(value: u64) -> u32 {
    (value >> 32) as u32
}

/// Where the 32-bit half of argument `arg` is: arguments are 64-bit,
/// little-endian on the architectures corral runs on.
fn arg_word(arg: u8, high_half: bool) -> u32 {
    const _: () = assert!(cfg!(target_endian = "little"));
    ARGS + 8 * u32::from(arg) + if high_half { 4 } else { 0 }
}

/// Compiles `policy` into a program for `seccomp(2)`.
pub(crate) fn compile(policy: &Policy) -> Result<Vec<Instruction>, TooLong> {
    let mut program = vec![
        stmt(LD_W_ABS, ARCH),
        jump(JEQ_K, policy.arch, 1, 0),
        stmt(RET_K, Action::KillProcess.value()),
        stmt(LD_W_ABS, NR),
    ];
    let ranges = ranges(policy);
    tree(&ranges, &mut program)?;
    Ok(program)
}

/// A run of numbers from `start` (to the next range's start) that share
/// one decision.
struct Range<'a> {
    start: u32,
    decision: Leaf<'a>,
}

#[derive(Clone, Copy, PartialEq)]
enum Leaf<'a> {
    Action(Action),
    /// Rules are never shared: each syscall's block is its own.
    Rules(&'a Decision),
}

/// The ranges covering every number from 0 up.
fn ranges(policy: &Policy) -> Vec<Range<'_>> {
    let mut ranges = Vec::new();
    let mut next = 0u32;
    for (&nr, decision) in &policy.syscalls {
        if nr > next {
            push_range(&mut ranges, next, Leaf::Action(policy.otherwise));
        }
        let leaf = match decision {
            Decision::Always(action) => Leaf::Action(*action),
            rules @ Decision::Rules { .. } => Leaf::Rules(rules),
        };
        push_range(&mut ranges, nr, leaf);
        next = nr.saturating_add(1);
    }
    // Numbers above the last syscall (up to x32's and beyond).
    push_range(&mut ranges, next, Leaf::Action(policy.otherwise));
    ranges
}

/// Adds a range, or lets the last one run on when it returns the same
/// action.
fn push_range<'a>(ranges: &mut Vec<Range<'a>>, start: u32, decision: Leaf<'a>) {
    let merges = matches!(decision, Leaf::Action(_))
        && ranges.last().is_some_and(|last| last.decision == decision);
    if !merges {
        ranges.push(Range { start, decision });
    }
}

/// Emits a search over `ranges` (the accumulator holds the number).
fn tree(ranges: &[Range<'_>], program: &mut Vec<Instruction>) -> Result<(), TooLong> {
    if let [only] = ranges {
        return leaf(only.decision, program);
    }
    let (left, right) = ranges.split_at(ranges.len() / 2);
    // number >= right's start: take the long jump over the left subtree.
    program.push(jump(JGE_K, right[0].start, 0, 1));
    let over = program.len();
    program.push(stmt(JA, 0));
    tree(left, program)?;
    let distance = program.len() - over - 1;
    program[over].k = u32::try_from(distance).map_err(|_| TooLong(distance))?;
    tree(right, program)
}

fn leaf(decision: Leaf<'_>, program: &mut Vec<Instruction>) -> Result<(), TooLong> {
    match decision {
        Leaf::Action(action) => program.push(stmt(RET_K, action.value())),
        Leaf::Rules(Decision::Rules {
            rules,
            then,
            otherwise,
        }) => {
            for rule in rules {
                program.extend(rule_block(rule, *then)?);
            }
            program.push(stmt(RET_K, otherwise.value()));
        }
        Leaf::Rules(Decision::Always(action)) => program.push(stmt(RET_K, action.value())),
    }
    Ok(())
}

/// Marks a jump in a rule block to patch to the block's end.
const FAIL: u8 = u8::MAX;

/// One rule: each failing condition jumps past the block (to the next
/// rule, or to `otherwise`); if all hold, `then`.
fn rule_block(rule: &[Condition], then: Action) -> Result<Vec<Instruction>, TooLong> {
    let mut block = Vec::new();
    for condition in rule {
        match *condition {
            Condition::Eq32 { arg, value } => {
                compare(&mut block, arg_word(arg, false), None, value, true);
            }
            Condition::Ne32 { arg, value } => {
                compare(&mut block, arg_word(arg, false), None, value, false);
            }
            Condition::Masked64 { arg, mask, value } => {
                compare(
                    &mut block,
                    arg_word(arg, true),
                    Some(high(mask)),
                    high(value),
                    true,
                );
                compare(
                    &mut block,
                    arg_word(arg, false),
                    Some(low(mask)),
                    low(value),
                    true,
                );
            }
        }
    }
    block.push(stmt(RET_K, then.value()));
    let len = block.len();
    for (at, instruction) in block.iter_mut().enumerate() {
        let past_end = u8::try_from(len - at - 1).map_err(|_| TooLong(len))?;
        if instruction.jt == FAIL && instruction.code == JEQ_K {
            instruction.jt = past_end;
        }
        if instruction.jf == FAIL && instruction.code == JEQ_K {
            instruction.jf = past_end;
        }
    }
    Ok(block)
}

/// Loads the 32-bit `word` of the syscall's data, masks it, and fails the
/// rule unless it equals `value` (or, with `equal` false, unless it
/// differs).
fn compare(block: &mut Vec<Instruction>, word: u32, mask: Option<u32>, value: u32, equal: bool) {
    block.push(stmt(LD_W_ABS, word));
    if let Some(mask) = mask {
        block.push(stmt(AND_K, mask));
    }
    let (jt, jf) = if equal { (0, FAIL) } else { (FAIL, 0) };
    block.push(jump(JEQ_K, value, jt, jf));
}

/// Runs `program` on one syscall, as the kernel would: for tests.
#[cfg(test)]
pub(crate) fn run(program: &[Instruction], arch: u32, nr: u32, args: &[u64; 6]) -> u32 {
    let word = |offset: u32| -> u32 {
        match offset {
            NR => nr,
            ARCH => arch,
            _ => {
                let index = usize::try_from((offset - ARGS) / 8).unwrap();
                if (offset - ARGS).is_multiple_of(8) {
                    low(args[index])
                } else {
                    high(args[index])
                }
            }
        }
    };
    let (mut pc, mut a) = (0usize, 0u32);
    loop {
        let instruction = program[pc];
        pc += 1;
        match instruction.code {
            LD_W_ABS => a = word(instruction.k),
            AND_K => a &= instruction.k,
            JA => pc += usize::try_from(instruction.k).unwrap(),
            JEQ_K | JGE_K => {
                let taken = if instruction.code == JEQ_K {
                    a == instruction.k
                } else {
                    a >= instruction.k
                };
                pc += usize::from(if taken {
                    instruction.jt
                } else {
                    instruction.jf
                });
            }
            RET_K => return instruction.k,
            other => panic!("unexpected instruction {other:#x}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARCH_UNDER_TEST: u32 = 0xc000_003e;

    fn sample() -> Policy {
        let mut syscalls = BTreeMap::new();
        for nr in [0, 1, 2, 3, 9, 10, 11, 60, 231] {
            syscalls.insert(nr, Decision::Always(Action::Allow));
        }
        syscalls.insert(57, Decision::Always(Action::Trap));
        syscalls.insert(435, Decision::Always(Action::Errno(38)));
        syscalls.insert(
            56,
            Decision::Rules {
                rules: vec![vec![
                    Condition::Masked64 {
                        arg: 0,
                        mask: 0x10000,
                        value: 0x10000,
                    },
                    Condition::Masked64 {
                        arg: 0,
                        mask: 0x7e02_0000,
                        value: 0,
                    },
                ]],
                then: Action::Allow,
                otherwise: Action::Trap,
            },
        );
        syscalls.insert(
            62,
            Decision::Rules {
                rules: vec![
                    vec![Condition::Eq32 {
                        arg: 0,
                        value: 4242,
                    }],
                    vec![Condition::Eq32 { arg: 0, value: 0 }],
                ],
                then: Action::Allow,
                otherwise: Action::Trap,
            },
        );
        syscalls.insert(
            13,
            Decision::Rules {
                rules: vec![vec![Condition::Ne32 { arg: 0, value: 31 }]],
                then: Action::Allow,
                otherwise: Action::Trap,
            },
        );
        Policy {
            arch: ARCH_UNDER_TEST,
            syscalls,
            otherwise: Action::Notify,
        }
    }

    /// Arguments that sit on and around the values the rules test.
    fn interesting() -> Vec<u64> {
        vec![
            0,
            1,
            31,
            4242,
            0x10000,
            0x1_0000_0000 | 4242,
            0x10000 | 0x2000_0000,
            0x10f00 | 0x10000,
            u64::MAX,
            0xffff_ffff,
        ]
    }

    #[test]
    fn the_program_decides_as_the_policy_for_every_number() {
        let policy = sample();
        let program = compile(&policy).unwrap();
        for nr in 0..1000u32 {
            for first in interesting() {
                let args = [first, 7, 0, 0, 0, 0];
                assert_eq!(
                    run(&program, ARCH_UNDER_TEST, nr, &args),
                    policy.decide(ARCH_UNDER_TEST, nr, &args),
                    "nr {nr}, arg0 {first:#x}"
                );
            }
        }
        for nr in [0x4000_0000, u32::MAX] {
            assert_eq!(
                run(&program, ARCH_UNDER_TEST, nr, &[0; 6]),
                Action::Notify.value()
            );
        }
        assert_eq!(
            run(&program, 0x4000_0003, 0, &[0; 6]),
            Action::KillProcess.value(),
            "another architecture is killed"
        );
    }

    #[test]
    fn every_jump_stays_forward_and_inside() {
        let program = compile(&sample()).unwrap();
        for (at, instruction) in program.iter().enumerate() {
            let targets: Vec<usize> = match instruction.code {
                JA => vec![at + 1 + usize::try_from(instruction.k).unwrap()],
                JEQ_K | JGE_K => vec![
                    at + 1 + usize::from(instruction.jt),
                    at + 1 + usize::from(instruction.jf),
                ],
                _ => Vec::new(),
            };
            for target in targets {
                assert!(target < program.len(), "{at}: {instruction:?}");
            }
        }
        assert_eq!(program.last().unwrap().code, RET_K);
    }

    #[test]
    fn the_instruction_codes_are_the_kernels() {
        use libc::{BPF_ABS, BPF_ALU, BPF_AND, BPF_JA, BPF_JEQ, BPF_JGE, BPF_JMP, BPF_K};
        use libc::{BPF_LD, BPF_RET, BPF_W};
        let codes = [
            (LD_W_ABS, BPF_LD | BPF_W | BPF_ABS),
            (JEQ_K, BPF_JMP | BPF_JEQ | BPF_K),
            (JGE_K, BPF_JMP | BPF_JGE | BPF_K),
            (JA, BPF_JMP | BPF_JA),
            (AND_K, BPF_ALU | BPF_AND | BPF_K),
            (RET_K, BPF_RET | BPF_K),
        ];
        for (ours, kernel) in codes {
            assert_eq!(u32::from(ours), kernel);
        }
        for (action, kernel) in [
            (Action::Allow, libc::SECCOMP_RET_ALLOW),
            (Action::Errno(0), libc::SECCOMP_RET_ERRNO),
            (Action::Trap, libc::SECCOMP_RET_TRAP),
            (Action::Notify, libc::SECCOMP_RET_USER_NOTIF),
            (Action::KillProcess, libc::SECCOMP_RET_KILL_PROCESS),
        ] {
            assert_eq!(action.value(), kernel);
        }
    }

    #[test]
    fn an_empty_policy_answers_otherwise() {
        let policy = Policy {
            arch: ARCH_UNDER_TEST,
            syscalls: BTreeMap::new(),
            otherwise: Action::Errno(1),
        };
        let program = compile(&policy).unwrap();
        assert_eq!(
            run(&program, ARCH_UNDER_TEST, 5, &[0; 6]),
            Action::Errno(1).value()
        );
    }
}
