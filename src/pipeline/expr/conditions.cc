// Condition (conditions.h): a recursive-descent parser and a tree evaluator.
#include "pipeline/expr/conditions.h"

#include <fmt/format.h>

#include <optional>
#include <regex>
#include <string>
#include <vector>

#include "pipeline/expr/expr_lexer.h"

namespace eventloom::pipeline {

namespace expr_internal {

enum class NodeKind {
    kLiteral,
    kPath,
    kList,
    kExists,
    kNot,
    kAnd,
    kOr,
    kEq,
    kNe,
    kLt,
    kLe,
    kGt,
    kGe,
    kIn,
    kContains,
    kMatches,
};

struct ConditionNode {
    NodeKind kind = NodeKind::kLiteral;
    nlohmann::json literal;
    ScopePath path;
    std::vector<std::unique_ptr<ConditionNode>> children;
    std::shared_ptr<const std::regex> regex;  // kMatches with a literal pattern
};

}  // namespace expr_internal

namespace {

using expr_internal::ConditionNode;
using expr_internal::Describe;
using expr_internal::ErrorAt;
using expr_internal::Lexer;
using expr_internal::NodeKind;
using expr_internal::Token;
using expr_internal::TokenKind;
using nlohmann::json;
using NodePtr = std::unique_ptr<ConditionNode>;

std::optional<NodeKind> ComparisonOperator(const Token& t) {
    if (t.kind == TokenKind::kPunct) {
        if (t.text == "==") return NodeKind::kEq;
        if (t.text == "!=") return NodeKind::kNe;
        if (t.text == "<") return NodeKind::kLt;
        if (t.text == "<=") return NodeKind::kLe;
        if (t.text == ">") return NodeKind::kGt;
        if (t.text == ">=") return NodeKind::kGe;
    }
    if (t.kind == TokenKind::kIdent) {
        if (t.text == "in") return NodeKind::kIn;
        if (t.text == "contains") return NodeKind::kContains;
        if (t.text == "matches") return NodeKind::kMatches;
    }
    return std::nullopt;
}

bool IsPunct(const Token& t, std::string_view text) {
    return t.kind == TokenKind::kPunct && t.text == text;
}

NodePtr MakeNode(NodeKind kind) {
    auto node = std::make_unique<ConditionNode>();
    node->kind = kind;
    return node;
}

class Parser {
public:
    explicit Parser(std::string_view text) : lexer_(text, 0) {}

    Result<NodePtr> ParseAll() {
        EVENTLOOM_ASSIGN_OR_RETURN(NodePtr root, ParseOr());
        Token t = lexer_.Next();
        if (t.kind == TokenKind::kError) return ErrorAt(t.offset, t.text);
        if (t.kind != TokenKind::kEnd) {
            return ErrorAt(t.offset, "expected an operator or the end, " + Describe(t));
        }
        return root;
    }

private:
    Result<NodePtr> ParseOr() {
        EVENTLOOM_ASSIGN_OR_RETURN(NodePtr left, ParseAnd());
        while (IsPunct(lexer_.Peek(), "||")) {
            lexer_.Next();
            EVENTLOOM_ASSIGN_OR_RETURN(NodePtr right, ParseAnd());
            left = Binary(NodeKind::kOr, std::move(left), std::move(right));
        }
        return left;
    }

    Result<NodePtr> ParseAnd() {
        EVENTLOOM_ASSIGN_OR_RETURN(NodePtr left, ParseComparison());
        while (IsPunct(lexer_.Peek(), "&&")) {
            lexer_.Next();
            EVENTLOOM_ASSIGN_OR_RETURN(NodePtr right, ParseComparison());
            left = Binary(NodeKind::kAnd, std::move(left), std::move(right));
        }
        return left;
    }

    Result<NodePtr> ParseComparison() {
        EVENTLOOM_ASSIGN_OR_RETURN(NodePtr left, ParseUnary());
        std::optional<NodeKind> op = ComparisonOperator(lexer_.Peek());
        if (!op) return left;
        lexer_.Next();
        const size_t right_offset = lexer_.Offset();
        EVENTLOOM_ASSIGN_OR_RETURN(NodePtr right, ParseUnary());
        if (*op == NodeKind::kMatches && right->kind == NodeKind::kLiteral) {
            if (!right->literal.is_string()) {
                return ErrorAt(right_offset,
                               "expected a regular expression string after "
                               "'matches'");
            }
            try {
                right->regex = std::make_shared<const std::regex>(right->literal.get<std::string>(),
                                                                  std::regex::ECMAScript);
            } catch (const std::regex_error& e) {
                return ErrorAt(right_offset,
                               fmt::format("invalid regular expression: {}", e.what()));
            }
        }
        return Binary(*op, std::move(left), std::move(right));
    }

    Result<NodePtr> ParseUnary() {
        if (IsPunct(lexer_.Peek(), "!")) {
            lexer_.Next();
            EVENTLOOM_ASSIGN_OR_RETURN(NodePtr operand, ParseUnary());
            NodePtr node = MakeNode(NodeKind::kNot);
            node->children.push_back(std::move(operand));
            return node;
        }
        return ParsePrimary();
    }

    Result<NodePtr> ParsePrimary() {
        NodePtr literal = MakeNode(NodeKind::kLiteral);
        if (expr_internal::ParseLiteral(&lexer_, &literal->literal)) return literal;
        Token t = lexer_.Next();
        if (IsPunct(t, "(")) {
            EVENTLOOM_ASSIGN_OR_RETURN(NodePtr inner, ParseOr());
            EVENTLOOM_RETURN_IF_ERROR(Expect(")"));
            return inner;
        }
        if (IsPunct(t, "[")) return ParseList();
        if (t.kind == TokenKind::kIdent && !ComparisonOperator(t)) {
            if (t.text == "exists" && IsPunct(lexer_.Peek(), "(")) {
                lexer_.Next();
                Token first = lexer_.Next();
                if (first.kind != TokenKind::kIdent) {
                    return ErrorAt(first.offset, "expected a path in exists(), " + Describe(first));
                }
                NodePtr node = MakeNode(NodeKind::kExists);
                EVENTLOOM_ASSIGN_OR_RETURN(node->path,
                                           expr_internal::ParsePathAfter(first, &lexer_));
                EVENTLOOM_RETURN_IF_ERROR(Expect(")"));
                return node;
            }
            NodePtr node = MakeNode(NodeKind::kPath);
            EVENTLOOM_ASSIGN_OR_RETURN(node->path, expr_internal::ParsePathAfter(t, &lexer_));
            return node;
        }
        if (t.kind == TokenKind::kError) return ErrorAt(t.offset, t.text);
        return ErrorAt(t.offset, "expected a value, a path, '(' or '!', " + Describe(t));
    }

    Result<NodePtr> ParseList() {
        NodePtr list = MakeNode(NodeKind::kList);
        if (IsPunct(lexer_.Peek(), "]")) {
            lexer_.Next();
            return list;
        }
        while (true) {
            EVENTLOOM_ASSIGN_OR_RETURN(NodePtr item, ParseOr());
            list->children.push_back(std::move(item));
            Token t = lexer_.Next();
            if (IsPunct(t, "]")) return list;
            if (!IsPunct(t, ",")) return ErrorAt(t.offset, "expected ',' or ']', " + Describe(t));
        }
    }

    Status Expect(std::string_view punct) {
        Token t = lexer_.Next();
        if (IsPunct(t, punct)) return Status::Ok();
        if (t.kind == TokenKind::kError) return ErrorAt(t.offset, t.text);
        return ErrorAt(t.offset, fmt::format("expected '{}', {}", punct, Describe(t)));
    }

    static NodePtr Binary(NodeKind kind, NodePtr left, NodePtr right) {
        NodePtr node = MakeNode(kind);
        node->children.push_back(std::move(left));
        node->children.push_back(std::move(right));
        return node;
    }

    Lexer lexer_;
};

using Value = std::optional<json>;  // nullopt: a missing path

bool Truthy(const Value& v) {
    if (!v || v->is_null()) return false;
    if (v->is_boolean()) return v->get<bool>();
    if (v->is_number()) return v->get<double>() != 0;
    // json::empty() is false for every string, "" included: ask the string itself.
    if (v->is_string()) return !v->get_ref<const std::string&>().empty();
    if (v->is_array() || v->is_object()) return !v->empty();
    return true;
}

bool Equal(const json& a, const json& b) {
    if (a.is_number() && b.is_number()) return a.get<double>() == b.get<double>();
    return a == b;
}

// -1, 0, 1, or nullopt when the two cannot be ordered.
std::optional<int> Order(const json& a, const json& b) {
    if (a.is_number() && b.is_number()) {
        const double x = a.get<double>();
        const double y = b.get<double>();
        return x < y ? -1 : (x > y ? 1 : 0);
    }
    if (a.is_string() && b.is_string()) {
        const int c = a.get_ref<const std::string&>().compare(b.get_ref<const std::string&>());
        return c < 0 ? -1 : (c > 0 ? 1 : 0);
    }
    return std::nullopt;
}

// Whether `container` holds `item`: a list item, an object key, a substring.
bool Holds(const json& container, const json& item) {
    if (container.is_array()) {
        for (const json& x : container) {
            if (Equal(x, item)) return true;
        }
        return false;
    }
    if (container.is_object()) {
        return item.is_string() && container.contains(item.get_ref<const std::string&>());
    }
    if (container.is_string() && item.is_string()) {
        return container.get_ref<const std::string&>().find(item.get_ref<const std::string&>()) !=
               std::string::npos;
    }
    return false;
}

Value Eval(const ConditionNode& node, const json& scope);

bool Matches(const ConditionNode& node, const json& left, const json& right) {
    if (!left.is_string()) return false;
    const std::string& text = left.get_ref<const std::string&>();
    try {
        if (node.children[1]->regex) return std::regex_search(text, *node.children[1]->regex);
        if (!right.is_string()) return false;
        return std::regex_search(text, std::regex(right.get<std::string>()));
    } catch (const std::exception&) {
        return false;  // an invalid pattern from the data, or a search too complex to finish
    }
}

bool Compare(const ConditionNode& node, const json& scope) {
    const Value left = Eval(*node.children[0], scope);
    const Value right = Eval(*node.children[1], scope);
    if (!left || !right) return false;
    switch (node.kind) {
        case NodeKind::kEq:
            return Equal(*left, *right);
        case NodeKind::kNe:
            return !Equal(*left, *right);
        case NodeKind::kLt:
            return Order(*left, *right).value_or(1) < 0;
        case NodeKind::kLe:
            return Order(*left, *right).value_or(1) <= 0;
        case NodeKind::kGt:
            return Order(*left, *right).value_or(-1) > 0;
        case NodeKind::kGe:
            return Order(*left, *right).value_or(-1) >= 0;
        case NodeKind::kIn:
            return Holds(*right, *left);
        case NodeKind::kContains:
            return Holds(*left, *right);
        case NodeKind::kMatches:
            return Matches(node, *left, *right);
        default:
            return false;
    }
}

Value Eval(const ConditionNode& node, const json& scope) {
    switch (node.kind) {
        case NodeKind::kLiteral:
            return node.literal;
        case NodeKind::kPath: {
            const json* found = expr_internal::Resolve(scope, node.path);
            if (!found) return std::nullopt;
            return *found;
        }
        case NodeKind::kList: {
            json list = json::array();
            for (const auto& child : node.children) {
                Value v = Eval(*child, scope);
                list.push_back(v ? std::move(*v) : json(nullptr));
            }
            return list;
        }
        case NodeKind::kExists:
            return json(expr_internal::Resolve(scope, node.path) != nullptr);
        case NodeKind::kNot:
            return json(!Truthy(Eval(*node.children[0], scope)));
        case NodeKind::kAnd:
            return json(Truthy(Eval(*node.children[0], scope)) &&
                        Truthy(Eval(*node.children[1], scope)));
        case NodeKind::kOr:
            return json(Truthy(Eval(*node.children[0], scope)) ||
                        Truthy(Eval(*node.children[1], scope)));
        default:
            return json(Compare(node, scope));
    }
}

}  // namespace

Result<Condition> Condition::Compile(std::string_view text) {
    Parser parser(text);
    EVENTLOOM_ASSIGN_OR_RETURN(NodePtr root, parser.ParseAll());
    Condition c;
    c.root_ = std::move(root);
    return c;
}

bool Condition::Evaluate(const json& scope) const {
    if (!root_) return false;  // a default-constructed condition
    try {
        return Truthy(Eval(*root_, scope));
    } catch (const std::exception&) {
        return false;  // nothing above throws on purpose; a bad_alloc is no reason to crash
    }
}

}  // namespace eventloom::pipeline
