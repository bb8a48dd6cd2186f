/* placeholder: replaced by the implementation */
typedef int gw_placeholder_header_rules_t;
