//! The cost of one CEL expression over a schema node, following cel-go's `checker/cost.go` with
//! the API server's size estimates; it also records which schema nodes the expression reads.
//! The rules of the model are listed in the parent module.

use std::collections::BTreeMap;

use serde_json::Value;

use super::parse::{Expr, Literal, Macro};
use super::sizes::{Shape, max_elements, shape, traversal_size};
use super::{EstimateError, UNBOUNDED_STRING};

const STRING_TRAVERSAL_COST_FACTOR: f64 = 0.1;
const REGEX_STRING_LENGTH_COST_FACTOR: f64 = 0.25;
const LIST_CREATE_BASE_COST: u64 = 10;
const MAP_CREATE_BASE_COST: u64 = 30;

/// Schema nodes an expression reads, by path.
pub(super) type Reads<'s> = BTreeMap<String, &'s Value>;

/// The cost of `expr` attached to `node` (at schema path `path`), and what it reads.
pub(super) fn estimate<'s>(
    node: &'s Value,
    path: &'s str,
    expr: &Expr,
) -> Result<(u64, Reads<'s>), EstimateError> {
    let mut estimator = Estimator {
        node,
        path,
        scopes: Vec::new(),
        reads: BTreeMap::new(),
    };
    let (cost, _) = estimator.cost(expr)?;
    Ok((cost, estimator.reads))
}

/// What a (sub)expression evaluates to, as far as sizes go.
#[derive(Debug, Clone)]
struct Val<'s> {
    shape: Shape,
    /// Largest size: characters of a string, bytes, items of a list, entries of a map.
    size: u64,
    /// The schema node it comes from, with its path.
    node: Option<(&'s Value, String)>,
    /// Element (value) of a list or map built in the expression.
    elem: Option<Box<Val<'s>>>,
}

impl<'s> Val<'s> {
    fn scalar() -> Self {
        Self::sized(Shape::Scalar, 1)
    }

    fn sized(shape: Shape, size: u64) -> Self {
        Val {
            shape,
            size,
            node: None,
            elem: None,
        }
    }

    fn of_node(node: &'s Value, path: String) -> Self {
        Val {
            shape: shape(node),
            size: max_elements(node),
            node: Some((node, path)),
            elem: None,
        }
    }

    /// What a comparison of the whole value traverses: the value's size for strings, every leaf
    /// for containers.
    fn traversal_size(&self) -> u64 {
        match (&self.node, self.shape) {
            (_, Shape::Scalar) => 1,
            (_, Shape::String | Shape::Bytes) => self.size,
            (Some((node, _)), _) => traversal_size(node),
            (None, _) => self
                .size
                .saturating_mul(self.elem.as_ref().map_or(1, |e| e.traversal_size()))
                .min(UNBOUNDED_STRING),
        }
    }

    /// The element a comprehension iterates over, or an index yields.
    fn element(&self, key: bool) -> Result<Val<'s>, EstimateError> {
        match (&self.node, self.shape) {
            (_, Shape::Map) if key => Ok(Val::sized(Shape::String, UNBOUNDED_STRING)),
            (Some((node, path)), Shape::List) => match node.get("items") {
                Some(items) => Ok(Val::of_node(items, format!("{path}[]"))),
                None => Err(unsupported(format!("{path} has no items schema"))),
            },
            (Some((node, path)), Shape::Map) => match node.get("additionalProperties") {
                Some(values @ Value::Object(_)) => Ok(Val::of_node(values, format!("{path}.*"))),
                _ => Err(unsupported(format!("{path} has no additionalProperties"))),
            },
            (None, Shape::List | Shape::Map) => Ok(self
                .elem
                .as_deref()
                .cloned()
                .unwrap_or_else(|| Val::sized(Shape::Scalar, 0))),
            _ => Err(unsupported(format!(
                "cannot iterate over a {:?}",
                self.shape
            ))),
        }
    }
}

fn unsupported(message: String) -> EstimateError {
    EstimateError::Unsupported(message)
}

struct Estimator<'s> {
    node: &'s Value,
    path: &'s str,
    scopes: Vec<(String, Val<'s>)>,
    reads: Reads<'s>,
}

impl<'s> Estimator<'s> {
    fn read(&mut self, val: &Val<'s>) {
        if let Some((node, path)) = &val.node {
            self.reads.insert(path.clone(), node);
        }
    }

    /// Comparing a whole object, list or map reads everything below it.
    fn read_subtree(&mut self, val: &Val<'s>) {
        if let Some((node, path)) = &val.node {
            let mut stack = vec![(*node, path.clone())];
            while let Some((node, path)) = stack.pop() {
                self.reads.insert(path.clone(), node);
                if let Some(props) = node.get("properties").and_then(Value::as_object) {
                    stack.extend(props.iter().map(|(k, v)| (v, join(&path, k))));
                }
                if let Some(items) = node.get("items") {
                    stack.push((items, format!("{path}[]")));
                }
                if let Some(values @ Value::Object(_)) = node.get("additionalProperties") {
                    stack.push((values, format!("{path}.*")));
                }
            }
        }
    }

    fn cost(&mut self, expr: &Expr) -> Result<(u64, Val<'s>), EstimateError> {
        match expr {
            Expr::Literal(literal) => Ok((0, literal_val(literal))),
            Expr::Ident(name) => {
                let val = match self.scopes.iter().rev().find(|(n, _)| n == name) {
                    Some((_, val)) => val.clone(),
                    None if name == "self" || name == "oldSelf" => {
                        Val::of_node(self.node, self.path.to_owned())
                    }
                    None => return Err(unsupported(format!("unknown variable `{name}`"))),
                };
                self.read(&val);
                Ok((1, val))
            }
            Expr::Select { operand, field } => {
                let (cost, operand) = self.cost(operand)?;
                let val = select(&operand, field)?;
                self.read(&val);
                Ok((cost + 1, val))
            }
            Expr::Has { operand, field } => {
                let (cost, operand) = self.cost(operand)?;
                // Only checks that the field exists in the schema: a presence test reads no value.
                select(&operand, field)?;
                Ok((cost + 1, Val::scalar()))
            }
            Expr::List(items) => {
                let mut cost = LIST_CREATE_BASE_COST;
                let mut elem: Option<Val<'s>> = None;
                for item in items {
                    let (c, v) = self.cost(item)?;
                    cost = cost.saturating_add(c);
                    elem = Some(match elem {
                        Some(e) => union(e, v),
                        None => v,
                    });
                }
                let mut val = Val::sized(Shape::List, items.len() as u64);
                val.elem = elem.map(Box::new);
                Ok((cost, val))
            }
            Expr::Map(entries) => {
                let mut cost = MAP_CREATE_BASE_COST;
                let mut elem: Option<Val<'s>> = None;
                for (key, value) in entries {
                    let (kc, _) = self.cost(key)?;
                    let (vc, v) = self.cost(value)?;
                    cost = cost.saturating_add(kc).saturating_add(vc);
                    elem = Some(match elem {
                        Some(e) => union(e, v),
                        None => v,
                    });
                }
                let mut val = Val::sized(Shape::Map, entries.len() as u64);
                val.elem = elem.map(Box::new);
                Ok((cost, val))
            }
            Expr::Comprehension {
                kind,
                range,
                var,
                body,
            } => self.comprehension(*kind, range, var, body),
            Expr::Call {
                function,
                target,
                args,
            } => self.call(function, target.as_deref(), args),
        }
    }

    fn comprehension(
        &mut self,
        kind: Macro,
        range: &Expr,
        var: &str,
        body: &Expr,
    ) -> Result<(u64, Val<'s>), EstimateError> {
        let (range_cost, range) = self.cost(range)?;
        if !matches!(range.shape, Shape::List | Shape::Map) {
            return Err(unsupported(format!(
                "{kind:?} over a {:?}, not a list or map",
                range.shape
            )));
        }
        let item = range.element(range.shape == Shape::Map)?;
        self.scopes.push((var.to_owned(), item.clone()));
        let body = self.cost(body);
        self.scopes.pop();
        let (body_cost, body) = body?;
        // (accumulator init, result, loop condition + step without the body) of cel-go's
        // expansion of each macro, costed like any other expression.
        let (init, result, per_item, out) = match kind {
            // init true; condition @not_strictly_false(acc) = 2; step acc && p = 1 + p.
            Macro::All => (0, 1, 3, Val::scalar()),
            // init false; condition @not_strictly_false(!acc) = 3; step acc || p = 1 + p.
            Macro::Exists => (0, 1, 4, Val::scalar()),
            // init 0; condition true; step p ? acc + 1 : acc = p + 2; result acc == 1 = 2.
            Macro::ExistsOne => (0, 2, 2, Val::scalar()),
            // init []; step acc + [f] = 1 + 1 + (10 + f).
            Macro::Map => (LIST_CREATE_BASE_COST, 1, 12, list_of(range.size, body)),
            // init []; step p ? acc + [x] : acc = p + 1 + 1 + (10 + 1).
            Macro::Filter => (LIST_CREATE_BASE_COST, 1, 13, list_of(range.size, item)),
        };
        let loop_cost = range.size.saturating_mul(per_item + body_cost);
        let cost = range_cost
            .saturating_add(init)
            .saturating_add(result)
            .saturating_add(loop_cost);
        Ok((cost, out))
    }

    fn call(
        &mut self,
        function: &str,
        target: Option<&Expr>,
        args: &[Expr],
    ) -> Result<(u64, Val<'s>), EstimateError> {
        let arity = (target.is_some(), args.len() + usize::from(target.is_some()));
        if !is_modelled(function, arity) {
            // Refused before its arguments, whose variables may be the function's own.
            return Err(unsupported(format!(
                "function `{function}` with {} argument(s){} is not in the cost model",
                args.len(),
                if target.is_some() {
                    " on a receiver"
                } else {
                    ""
                }
            )));
        }
        let mut costs = Vec::new();
        let mut vals = Vec::new();
        for expr in target.into_iter().chain(args) {
            let (c, v) = self.cost(expr)?;
            costs.push(c);
            vals.push(v);
        }
        let mut arg_cost = costs.iter().fold(0u64, |sum, c| sum.saturating_add(*c));
        let (cost, val) = match function {
            "_&&_" | "_||_" => (0, Val::scalar()),
            "_?_:_" => {
                // The condition plus the dearer branch, not both.
                arg_cost = costs[0].saturating_add(costs[1].max(costs[2]));
                (0, union(vals[1].clone(), vals[2].clone()))
            }
            "_==_" | "_!=_" => {
                for v in &vals {
                    if matches!(v.shape, Shape::List | Shape::Map | Shape::Object) {
                        self.read_subtree(v);
                    }
                }
                let size = vals[0].traversal_size().min(vals[1].traversal_size());
                (traverse(size), Val::scalar())
            }
            "_<_" | "_<=_" | "_>_" | "_>=_" => {
                let textual = vals
                    .iter()
                    .all(|v| matches!(v.shape, Shape::String | Shape::Bytes));
                let cost = if textual {
                    traverse(vals[0].size.min(vals[1].size))
                } else {
                    1
                };
                (cost, Val::scalar())
            }
            "_+_" => match (vals[0].shape, vals[1].shape) {
                (Shape::String, Shape::String) | (Shape::Bytes, Shape::Bytes) => {
                    let size = vals[0].size.saturating_add(vals[1].size);
                    (traverse(size), Val::sized(vals[0].shape, size))
                }
                (Shape::List, Shape::List) => {
                    let size = vals[0].size.saturating_add(vals[1].size);
                    let elem = union(vals[0].element(false)?, vals[1].element(false)?);
                    (1, list_of(size, elem))
                }
                _ => (1, Val::scalar()),
            },
            "@in" => {
                self.read_subtree(&vals[0]);
                (vals[1].size, Val::scalar())
            }
            "_[_]" => {
                let val = vals[0].element(false)?;
                self.read(&val);
                (1, val)
            }
            "startsWith" | "endsWith" => (traverse(vals[1].size), Val::scalar()),
            "contains" => (
                traverse(vals[0].size).saturating_mul(traverse(vals[1].size)),
                Val::scalar(),
            ),
            "matches" => {
                let text = traverse(vals[0].size.saturating_add(1));
                let regex = factor(vals[1].size, REGEX_STRING_LENGTH_COST_FACTOR);
                (text.saturating_mul(regex), Val::scalar())
            }
            "dyn" => (1, vals[0].clone()),
            "string" => {
                let size = match vals[0].shape {
                    Shape::String | Shape::Bytes => vals[0].size,
                    // The longest decimal or duration rendering of a scalar.
                    _ => 32,
                };
                (traverse(size), Val::sized(Shape::String, size))
            }
            // Arithmetic, negation, size() and scalar conversions: O(1).
            _ => (1, Val::scalar()),
        };
        Ok((cost.saturating_add(arg_cost), val))
    }
}

/// Whether the cost model knows `function` called with `(receiver?, argument count incl.
/// receiver)`.
fn is_modelled(function: &str, arity: (bool, usize)) -> bool {
    matches!(
        (function, arity),
        (
            "_&&_" | "_||_" | "_==_" | "_!=_" | "_<_" | "_<=_" | "_>_" | "_>=_",
            (false, 2)
        ) | (
            "_+_" | "_-_" | "_*_" | "_/_" | "_%_" | "@in" | "_[_]",
            (false, 2)
        ) | ("_?_:_", (false, 3))
            | (
                "!_" | "-_" | "dyn" | "string" | "int" | "uint" | "double" | "bool",
                (false, 1)
            )
            | ("startsWith" | "endsWith" | "contains", (true, 2))
            | ("matches", (_, 2))
            | ("size", (_, 1))
    )
}

fn list_of<'s>(size: u64, elem: Val<'s>) -> Val<'s> {
    let mut val = Val::sized(Shape::List, size);
    val.elem = Some(Box::new(elem));
    val
}

/// The smallest value covering both (the larger size; the schema node only if both share it).
fn union<'s>(a: Val<'s>, b: Val<'s>) -> Val<'s> {
    let same_node = matches!((&a.node, &b.node), (Some((_, x)), Some((_, y))) if x == y);
    let size = a.size.max(b.size);
    let mut out = if a.shape == b.shape { a } else { b };
    out.size = size;
    if !same_node {
        out.node = None;
    }
    out
}

fn literal_val<'s>(literal: &Literal) -> Val<'s> {
    match literal {
        Literal::String(s) => Val::sized(Shape::String, s.chars().count() as u64),
        Literal::Bytes(n) => Val::sized(Shape::Bytes, *n as u64),
        _ => Val::scalar(),
    }
}

/// `field` of an object (its property) or of a map (its value schema).
fn select<'s>(operand: &Val<'s>, field: &str) -> Result<Val<'s>, EstimateError> {
    match (&operand.node, operand.shape) {
        (Some((node, path)), Shape::Object) => node
            .get("properties")
            .and_then(|p| p.get(field))
            .map(|child| Val::of_node(child, join(path, field)))
            .ok_or_else(|| unsupported(format!("no field `{field}` under `{path}`"))),
        (Some(_), Shape::Map) | (None, Shape::Map) => operand.element(false),
        _ => Err(unsupported(format!(
            "cannot select `{field}` from a {:?}",
            operand.shape
        ))),
    }
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_owned()
    } else {
        format!("{path}.{field}")
    }
}

/// cel-go's `MultiplyByCostFactor`: rounded up.
fn factor(size: u64, cost_per_unit: f64) -> u64 {
    let cost = (size as f64 * cost_per_unit).ceil();
    if cost >= u64::MAX as f64 {
        u64::MAX
    } else {
        cost as u64
    }
}

/// Cost of traversing `size` characters once.
fn traverse(size: u64) -> u64 {
    factor(size, STRING_TRAVERSAL_COST_FACTOR)
}
