// Placeholder: filled by the gradient work of issue 14 (see gradient_rule_list.h).
