// Placeholder: filled by the ops work of issue 14 (see op_list.h).
