//! A tiny hand-written ONNX protobuf writer: just the messages a feed-forward classifier
//! needs. Field numbers follow `onnx.proto` (ONNX 1.x):
//!
//! - `ModelProto`: ir_version 1, graph 7, opset_import 8
//! - `OperatorSetIdProto`: domain 1, version 2
//! - `GraphProto`: node 1, name 2, initializer 5, input 11, output 12
//! - `NodeProto`: input 1, output 2, name 3, op_type 4, attribute 5
//! - `AttributeProto`: name 1, f 2, i 3, ints 8, type 20 (FLOAT 1, INT 2, INTS 7)
//! - `TensorProto`: dims 1, data_type 2 (FLOAT 1), name 8, raw_data 9
//! - `ValueInfoProto`: name 1, type 2; `TypeProto`: tensor_type 1;
//!   `TypeProto.Tensor`: elem_type 1, shape 2; `TensorShapeProto`: dim 1;
//!   `Dimension`: dim_value 1, dim_param 2

/// A protobuf message under construction.
#[derive(Default, Clone, Debug)]
pub struct Msg(Vec<u8>);

impl Msg {
    /// An empty message.
    pub fn new() -> Self {
        Msg(Vec::new())
    }
    /// The encoded fields so far.
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
    /// The encoded message.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
    fn varint_raw(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }
    fn tag(&mut self, field: u32, wire: u8) {
        self.varint_raw(((field as u64) << 3) | wire as u64);
    }
    /// An int32/int64/enum field (negative values take ten bytes, as protobuf specifies).
    pub fn varint(&mut self, field: u32, v: i64) -> &mut Self {
        self.tag(field, 0);
        self.varint_raw(v as u64);
        self
    }
    /// A length-delimited field: bytes, a string or an embedded message.
    pub fn bytes_field(&mut self, field: u32, b: &[u8]) -> &mut Self {
        self.tag(field, 2);
        self.varint_raw(b.len() as u64);
        self.0.extend_from_slice(b);
        self
    }
    /// A UTF-8 `string` field.
    pub fn string(&mut self, field: u32, s: &str) -> &mut Self {
        self.bytes_field(field, s.as_bytes())
    }
    /// An embedded message field.
    pub fn msg(&mut self, field: u32, m: &Msg) -> &mut Self {
        self.bytes_field(field, &m.0)
    }
    /// A `float` field (wire type 5, little-endian).
    pub fn fixed32(&mut self, field: u32, v: f32) -> &mut Self {
        self.tag(field, 5);
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
}

/// One tensor dimension of a graph input or output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dim {
    /// A fixed size.
    Value(i64),
    /// A symbolic size (e.g. the batch `N`).
    Param(String),
}

/// A node attribute.
#[derive(Clone, Debug, PartialEq)]
pub enum Attr {
    /// One integer.
    Int(i64),
    /// A list of integers.
    Ints(Vec<i64>),
    /// One float.
    Float(f32),
}

/// An ONNX graph of float tensors, written as a `ModelProto` by [`Graph::to_bytes`].
#[derive(Default, Clone, Debug)]
pub struct Graph {
    /// The graph's name in the file.
    pub name: String,
    nodes: Vec<Msg>,
    initializers: Vec<Msg>,
    inputs: Vec<Msg>,
    outputs: Vec<Msg>,
}

fn value_info(name: &str, dims: &[Dim]) -> Msg {
    let mut shape = Msg::new();
    for d in dims {
        let mut dm = Msg::new();
        match d {
            Dim::Value(v) => dm.varint(1, *v),
            Dim::Param(p) => dm.string(2, p),
        };
        shape.msg(1, &dm);
    }
    let mut tensor = Msg::new();
    tensor.varint(1, 1).msg(2, &shape); // elem_type FLOAT
    let mut ty = Msg::new();
    ty.msg(1, &tensor);
    let mut vi = Msg::new();
    vi.string(1, name).msg(2, &ty);
    vi
}

impl Graph {
    /// An empty graph called `name`.
    pub fn new(name: &str) -> Self {
        Graph { name: name.into(), ..Default::default() }
    }
    /// A float graph input.
    pub fn input(&mut self, name: &str, dims: &[Dim]) -> &mut Self {
        self.inputs.push(value_info(name, dims));
        self
    }
    /// A float graph output.
    pub fn output(&mut self, name: &str, dims: &[Dim]) -> &mut Self {
        self.outputs.push(value_info(name, dims));
        self
    }
    /// A float constant (`raw_data`, little-endian f32).
    pub fn initializer(&mut self, name: &str, dims: &[usize], data: &[f32]) -> &mut Self {
        assert_eq!(dims.iter().product::<usize>(), data.len(), "initializer {name}: dims and data disagree");
        let mut t = Msg::new();
        for &d in dims {
            t.varint(1, d as i64);
        }
        t.varint(2, 1).string(8, name); // data_type FLOAT
        let raw: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        t.bytes_field(9, &raw);
        self.initializers.push(t);
        self
    }
    /// A node of the default (`ai.onnx`) domain.
    pub fn node(&mut self, op: &str, inputs: &[&str], outputs: &[&str], attrs: &[(&str, Attr)]) -> &mut Self {
        let mut n = Msg::new();
        for i in inputs {
            n.string(1, i);
        }
        for o in outputs {
            n.string(2, o);
        }
        n.string(3, &format!("{op}_{}", self.nodes.len())).string(4, op);
        for (name, a) in attrs {
            let mut m = Msg::new();
            m.string(1, name);
            match a {
                Attr::Float(f) => {
                    m.fixed32(2, *f).varint(20, 1);
                }
                Attr::Int(i) => {
                    m.varint(3, *i).varint(20, 2);
                }
                Attr::Ints(v) => {
                    for i in v {
                        m.varint(8, *i);
                    }
                    m.varint(20, 7);
                }
            }
            n.msg(5, &m);
        }
        self.nodes.push(n);
        self
    }
    /// The whole `ModelProto` (IR version 8, default-domain opset 13).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut g = Msg::new();
        for n in &self.nodes {
            g.msg(1, n);
        }
        g.string(2, &self.name);
        for t in &self.initializers {
            g.msg(5, t);
        }
        for i in &self.inputs {
            g.msg(11, i);
        }
        for o in &self.outputs {
            g.msg(12, o);
        }
        let mut opset = Msg::new();
        opset.string(1, "").varint(2, 13);
        let mut m = Msg::new();
        m.varint(1, 8).string(2, "apsig").msg(7, &g).msg(8, &opset);
        m.into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_match_protobuf() {
        let mut m = Msg::new();
        m.varint(1, 150);
        assert_eq!(m.bytes(), &[0x08, 0x96, 0x01]);
        let mut m = Msg::new();
        m.varint(2, -1);
        assert_eq!(m.bytes().len(), 11);
        let mut m = Msg::new();
        m.string(2, "testing");
        assert_eq!(m.bytes(), &[0x12, 0x07, b't', b'e', b's', b't', b'i', b'n', b'g']);
        let mut m = Msg::new();
        m.fixed32(2, 1.0);
        assert_eq!(m.bytes(), &[0x15, 0x00, 0x00, 0x80, 0x3f]);
        let mut m = Msg::new();
        m.varint(20, 7);
        assert_eq!(m.bytes(), &[0xa0, 0x01, 0x07]);
    }
}
