//! Prints the parse tree of Parseq formulas, one per input line (each line a JSON string), in a
//! compact canonical form (`bin:"+"(n:1,v:x)`, `if(c,a,b)`, `call:g(…)`), or `ERR`. Used to
//! compare the parser with nearley's own output on the same formulas.
//!
//! `cargo run -p keyshift-core --example parseq_ast < formulas.jsonl`
#![allow(
    clippy::print_stdout,
    reason = "a command-line tool: its output is the point"
)]

use std::io::Read;

use keyshift_core::parseq::jsnum::to_js_string;
use keyshift_core::parseq::parser::{Ast, BinOp, Expr, NodeId, Unit, Var, parse};

fn var_name(v: &Var) -> String {
    match v {
        Var::Named(n) => n.to_string(),
        Var::Frame => "f".to_owned(),
        other => format!("{other:?}"),
    }
}

fn op_name(op: BinOp) -> &'static str {
    match op {
        BinOp::Add => "+",
        BinOp::Sub => "-",
        BinOp::Mul => "*",
        BinOp::Div => "/",
        BinOp::Rem => "%",
        BinOp::Pow => "^",
        BinOp::Colon => ":",
        BinOp::Lt => "<",
        BinOp::Le => "<=",
        BinOp::Gt => ">",
        BinOp::Ge => ">=",
        BinOp::Eq => "==",
        BinOp::Ne => "!=",
        BinOp::And => "and",
        BinOp::Or => "or",
    }
}

fn show(ast: &Ast, id: NodeId) -> String {
    let Some(node) = ast.nodes.get(id as usize) else {
        return "?".to_owned();
    };
    let q = |s: &str| serde_json::to_string(s).unwrap_or_default();
    match &node.expr {
        Expr::Num(n) => format!("n:{}", to_js_string(*n)),
        Expr::Unit(n, u) => {
            let u = match u {
                Unit::Frames => "f",
                Unit::Seconds => "s",
                Unit::Beats => "b",
            };
            format!("u:{u}(n:{})", to_js_string(*n))
        }
        Expr::Str(s) => format!("s:{}", q(s)),
        Expr::Bool(b) => format!("b:{b}"),
        Expr::Var(v) => format!("v:{}", var_name(v)),
        Expr::Neg(a) => format!("neg({})", show(ast, *a)),
        Expr::Bin(op, a, b) => format!(
            "bin:{}({},{})",
            q(op_name(*op)),
            show(ast, *a),
            show(ast, *b)
        ),
        Expr::BadOp(text, a, b) => format!("bin:{}({},{})", q(text), show(ast, *a), show(ast, *b)),
        Expr::If(c, a, b) => {
            let mut parts = vec![show(ast, *c), show(ast, *a)];
            parts.extend(b.map(|b| show(ast, b)));
            format!("if({})", parts.join(","))
        }
        Expr::Call(call) => {
            let args: Vec<String> = match &call.args {
                Ok(bound) => bound.iter().flatten().map(|a| show(ast, *a)).collect(),
                Err(_) => vec!["<invalid>".to_owned()],
            };
            format!("call:{}({})", call.name, args.join(","))
        }
    }
}

fn main() {
    let mut input = String::new();
    if std::io::stdin().read_to_string(&mut input).is_err() {
        return;
    }
    for line in input.lines().filter(|l| !l.is_empty()) {
        let expr: String = serde_json::from_str(line).unwrap_or_default();
        match parse(&expr) {
            Ok(ast) => println!("{}", show(&ast, ast.root)),
            Err(_) => println!("ERR"),
        }
    }
}
