// One attribute per attention spec (docs/contract.md). Each verifier builds the C++ sattn::Spec
// and runs sattn::ValidateSpec, so the compiler rejects exactly what the runtime rejects, with
// the parse location of the bad attribute.
#ifndef SATTN_ATTRS_TD
#define SATTN_ATTRS_TD

include "Sattn/SattnDialect.td"
include "mlir/IR/AttrTypeBase.td"

// `true` / `false` keywords (the generic integer FieldParser would want 0/1).
class Sattn_BoolParam<string dflt> : DefaultValuedParameter<"bool", dflt, "a boolean flag"> {
  let parser = "::mlir::sattn::parseBoolKeyword($_parser)";
  let printer = "$_printer << ($_self ? \"true\" : \"false\")";
}

// Plain float literal stored as an IEEE double APFloat (FieldParser has no double, and APFloat
// has the hash_value the attribute storage needs).
class Sattn_F64Param<string dflt> :
    DefaultValuedParameter<"::llvm::APFloat", "::llvm::APFloat(" # dflt # ")", "a float"> {
  let parser = "::mlir::sattn::parseDoubleLiteral($_parser)";
  let printer = "$_printer.printFloat($_self)";
  let comparator = "$_lhs.bitwiseIsEqual($_rhs)";
}

// A quoted string (the default std::string printer would drop the quotes).
class Sattn_StrParam<string dflt> : DefaultValuedParameter<"std::string", dflt, "a string"> {
  let printer = "$_printer.printString($_self)";
}

class Sattn_I64Param<string dflt> : DefaultValuedParameter<"int64_t", dflt, "an integer">;

class Sattn_SpecAttr<string name, string attrMnemonic> :
    AttrDef<Sattn_Dialect, name> {
  let mnemonic = attrMnemonic;
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
}

def Sattn_DenseSpecAttr : Sattn_SpecAttr<"DenseSpec", "dense"> {
  let summary = "Dense attention, optionally causal";
  let parameters = (ins Sattn_BoolParam<"false">:$causal);
}

def Sattn_SlidingWindowSpecAttr : Sattn_SpecAttr<"SlidingWindowSpec", "sliding_window"> {
  let summary = "Sliding window with dilation and global tokens";
  let description = [{
    Key j is visible from query position p iff (not causal or j <= p) and
    ((|p-j| < window*dilation and (p-j) mod dilation = 0) or j < global_tokens or
    p < global_tokens).
  }];
  let parameters = (ins
    Sattn_I64Param<"256">:$window,
    Sattn_BoolParam<"false">:$causal,
    Sattn_I64Param<"1">:$dilation,
    Sattn_I64Param<"0">:$global_tokens);
}

def Sattn_BlockTopKSpecAttr : Sattn_SpecAttr<"BlockTopKSpec", "block_topk"> {
  let summary = "Per-query-block top-k key blocks by mean-pooled block scores";
  let parameters = (ins
    Sattn_I64Param<"64">:$block,
    Sattn_F64Param<"0.125">:$keep,
    Sattn_I64Param<"1">:$global_blocks,
    Sattn_I64Param<"1">:$local_blocks,
    Sattn_BoolParam<"false">:$causal,
    Sattn_StrParam<"\"mean\"">:$score);
}

def Sattn_BigBirdSpecAttr : Sattn_SpecAttr<"BigBirdSpec", "bigbird"> {
  let summary = "BigBird: window, global and seeded random blocks";
  let parameters = (ins
    Sattn_I64Param<"64">:$block,
    Sattn_I64Param<"3">:$window_blocks,
    Sattn_I64Param<"1">:$global_blocks,
    Sattn_I64Param<"2">:$random_blocks,
    Sattn_I64Param<"0">:$seed,
    Sattn_BoolParam<"false">:$causal);
}

def Sattn_TopKPerQuerySpecAttr : Sattn_SpecAttr<"TopKPerQuerySpec", "topk_per_query"> {
  let summary = "Exact top-k keys per query by score";
  let parameters = (ins
    Sattn_I64Param<"64">:$k,
    Sattn_BoolParam<"false">:$causal);
}

// Any of the five spec attributes.
def Sattn_AnySpecAttr : Attr<
    CPred<"::llvm::isa<::mlir::sattn::DenseSpecAttr, ::mlir::sattn::SlidingWindowSpecAttr, "
          "::mlir::sattn::BlockTopKSpecAttr, ::mlir::sattn::BigBirdSpecAttr, "
          "::mlir::sattn::TopKPerQuerySpecAttr>($_self)">,
    "sattn spec attribute"> {
  let storageType = "::mlir::Attribute";
  let returnType = "::mlir::Attribute";
  let convertFromStorage = "$_self";
}

#endif  // SATTN_ATTRS_TD
