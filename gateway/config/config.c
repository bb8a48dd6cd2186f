/* placeholder: replaced by the implementation */
typedef int gw_placeholder_config_t;
