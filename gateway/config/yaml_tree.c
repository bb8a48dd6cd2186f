/* placeholder: replaced by the implementation */
typedef int gw_placeholder_yaml_tree_t;
