//! Machine-code stack analysis for functions without usable CFI.
//!
//! Abstract interpretation over the function's control-flow graph: the
//! state is the stack depth (bytes below the caller's stack pointer before
//! the call, so 8 at entry: the return address) plus, per general register,
//! "holds rsp at depth D" or "holds constant C". Handles push/pop, `sub/add
//! rsp`, `lea rsp`, frame pointers (`mov rbp,rsp` .. `mov rsp,rbp`/`leave`),
//! `and rsp` alignment (counted as the worst case), and inline stack-probe
//! loops (`mov r11,rsp; sub r11,N` or `lea r11,[rsp-N]`, then a loop ending
//! in `cmp rsp,r11; jne`). Anything else that writes rsp makes the size unknown.

use std::collections::BTreeMap;

use iced_x86::{FlowControl, Instruction, Register};

#[cfg(test)]
mod tests;
mod transfer;

use transfer::{Step, transfer};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Val {
    Unknown,
    Const(i64),
    /// Register holds the stack pointer value at this depth.
    Stack(i64),
}

#[derive(Clone, PartialEq, Eq, Debug)]
struct State {
    depth: i64,
    regs: [Val; 16],
    /// The value stored by the last `push`, with the depth right after it
    /// (what a `retfq` finds on top of the stack).
    pushed: Option<(i64, Val)>,
}

impl State {
    fn entry(depth: i64) -> Self {
        State {
            depth,
            regs: [Val::Unknown; 16],
            pushed: None,
        }
    }

    /// Merge `other` into `self` (a join point). Returns whether `self`
    /// changed. A deeper incoming stack wins and forgets register facts.
    fn join(&mut self, other: &State) -> bool {
        if other.depth > self.depth {
            *self = State::entry(other.depth);
            return true;
        }
        let mut changed = false;
        for r in 0..16 {
            if self.regs[r] != other.regs[r] && self.regs[r] != Val::Unknown {
                self.regs[r] = Val::Unknown;
                changed = true;
            }
        }
        if self.pushed.is_some() && self.pushed != other.pushed {
            self.pushed = None;
            changed = true;
        }
        changed
    }
}

/// Result of the machine-code analysis of one function.
#[derive(Debug, Clone)]
pub struct MInfo {
    /// Largest stack depth (incl. return address), or why it is unknown.
    pub frame: Result<u64, String>,
    /// Depth at the start of each instruction (None if unreached/unknown).
    pub depth_before: Vec<Option<i64>>,
}

fn gpr_index(r: Register) -> Option<usize> {
    let full = r.full_register();
    let idx = match full {
        Register::RAX => 0,
        Register::RCX => 1,
        Register::RDX => 2,
        Register::RBX => 3,
        Register::RSP => 4,
        Register::RBP => 5,
        Register::RSI => 6,
        Register::RDI => 7,
        Register::R8 => 8,
        Register::R9 => 9,
        Register::R10 => 10,
        Register::R11 => 11,
        Register::R12 => 12,
        Register::R13 => 13,
        Register::R14 => 14,
        Register::R15 => 15,
        _ => return None,
    };
    Some(idx)
}

const RSP: usize = 4;
const CALLER_SAVED: [usize; 9] = [0, 1, 2, 6, 7, 8, 9, 10, 11];
const MAX_DEPTH: i64 = 1 << 40;

/// Analyse one function's decoded instructions (all within [start, end)).
/// `tables` maps the index of a jump-table `jmp` to the indices of its
/// targets: each of them is analysed from the state at its own dispatch.
pub fn analyze(
    instrs: &[Instruction],
    start: u64,
    end: u64,
    tables: &BTreeMap<usize, Vec<usize>>,
) -> MInfo {
    let n = instrs.len();
    let mut w = Walk {
        states: vec![None; n],
        depth_before: vec![None; n],
        work: Vec::new(),
        max_depth: 8,
        undecoded_jmp_depth: None,
    };
    if n == 0 {
        return w.fail("no decodable instructions".into());
    }
    let index_of = |addr: u64| -> Option<usize> {
        if addr < start || addr >= end {
            return None;
        }
        instrs.binary_search_by_key(&addr, |i| i.ip()).ok()
    };
    w.states[0] = Some(State::entry(8));
    w.work.push(0);
    let mut budget = 16 * n + 64;
    loop {
        while let Some(i) = w.work.pop() {
            if budget == 0 {
                return w.fail("stack pointer does not converge (push/sub rsp in a loop?)".into());
            }
            budget -= 1;
            if let Err(why) = w.visit(i, instrs, tables, &index_of) {
                return w.fail(why);
            }
        }
        // Code that nothing reaches: a jump table that could not be read, or
        // dead code. Seed it with the deepest state at an indirect jump that
        // is not a decoded table (never the shallower state after an
        // epilogue's tail jump alone), else the nearest preceding state.
        let Some(u) = (0..n).find(|&i| w.states[i].is_none()) else {
            break;
        };
        let depth = w.undecoded_jmp_depth.unwrap_or_else(|| {
            (0..u)
                .rev()
                .find_map(|j| w.states[j].as_ref().map(|s| s.depth))
                .unwrap_or(8)
        });
        w.states[u] = Some(State::entry(depth));
        w.work.push(u);
    }
    MInfo {
        frame: Ok(w.max_depth as u64),
        depth_before: w.depth_before,
    }
}

/// Worklist state of one [`analyze`] run.
struct Walk {
    states: Vec<Option<State>>,
    depth_before: Vec<Option<i64>>,
    work: Vec<usize>,
    max_depth: i64,
    /// Deepest state seen at an indirect jump without a decoded table.
    undecoded_jmp_depth: Option<i64>,
}

impl Walk {
    fn fail(self, why: String) -> MInfo {
        MInfo {
            frame: Err(why),
            depth_before: self.depth_before,
        }
    }

    fn visit(
        &mut self,
        i: usize,
        instrs: &[Instruction],
        tables: &BTreeMap<usize, Vec<usize>>,
        index_of: &dyn Fn(u64) -> Option<usize>,
    ) -> Result<(), String> {
        let Some(mut st) = self.states[i].clone() else {
            return Ok(());
        };
        self.depth_before[i] = Some(st.depth);
        let ins = &instrs[i];
        let table = tables.get(&i);
        if ins.flow_control() == FlowControl::IndirectBranch && table.is_none() {
            let d = self.undecoded_jmp_depth.get_or_insert(st.depth);
            *d = (*d).max(st.depth);
        }
        let step = transfer(ins, &mut st, i, instrs, index_of, table);
        self.max_depth = self.max_depth.max(st.depth);
        if st.depth > MAX_DEPTH || st.depth < 0 {
            return Err(format!("stack pointer out of range at {:#x}", ins.ip()));
        }
        let succ = match step {
            Step::End => return Ok(()),
            Step::Unknown(why) => return Err(why),
            Step::Next(succ) => succ,
        };
        for s in succ {
            match &mut self.states[s] {
                slot @ None => {
                    *slot = Some(st.clone());
                    self.work.push(s);
                }
                Some(old) => {
                    if old.join(&st) {
                        self.work.push(s);
                    }
                }
            }
        }
        Ok(())
    }
}
