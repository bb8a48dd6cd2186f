/* placeholder: replaced by the implementation */
typedef int gw_placeholder_units_t;
