// `crate = "..."` names the path under which the runtime is reachable.

extern crate wq as renamed;

mod runtime {
    pub use ::wq::*;
}

#[renamed::main(crate = "renamed", workers = 1)]
async fn via_renamed_crate() -> u32 {
    6
}

#[wq::main(crate = "crate::runtime")]
async fn via_module() -> u32 {
    7
}

#[wq::main(crate = "::wq")]
async fn via_absolute_path() -> u32 {
    8
}

fn main() {
    assert_eq!(via_renamed_crate(), 6);
    assert_eq!(via_module(), 7);
    assert_eq!(via_absolute_path(), 8);
}
